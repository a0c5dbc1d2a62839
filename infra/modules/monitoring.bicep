// Azure Monitor alert rules for the app's own failures, on the telemetry it already sends to Application
// Insights (docs/telemetry.md): failed function invocations (the host's `requests`), and the change feed and
// the views falling behind (the `feed_publish_duration` and `view_catch_up_duration` timings, whose `outcome`
// says whether a run caught up). Notifications go to an action group that emails `alertEmail`; without one,
// the rules still fire and show in the portal. main.bicep deploys this only with Application Insights on.

param name string
param suffix string
param location string

@description('Resource id of the Application Insights component the app sends to.')
param insightsId string

@description('Who is emailed when a rule fires. Empty: no action group, the alerts show in the portal only.')
param alertEmail string = ''

@description('Failed invocations (not 4xx answers) within 15 minutes that raise the function-errors alert.')
@minValue(1)
param functionErrorThreshold int = 5

@description('Minutes in a row the feed (or a view) must end its runs behind or in error before it alerts.')
@minValue(5)
@maxValue(60)
param lagMinutes int = 15

// A lag alert looks at 5-minute bins: it fires when every bin in the last lagMinutes held a run that ended
// behind (at its deadline with more to do), stopped or in error. One slow run does not; a sink or view that
// stays behind, or keeps failing, does. No tenant is named (the metrics carry none, docs/telemetry.md): the
// API's feed and views routes tell which.
var lagPeriods = lagMinutes / 5

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: '${name}-ops-${suffix}'
  location: 'Global'
  properties: {
    groupShortName: take('${name}ops', 12)
    enabled: true
    emailReceivers: [
      { name: 'operations', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

var actions = empty(alertEmail) ? { actionGroups: [] } : { actionGroups: [actionGroup.id] }

// The host records each invocation in `requests`; an HTTP function's 4xx answers are the client's doing.
var functionErrorsQuery = 'requests | where success == false and not(resultCode startswith "4") | summarize failures = count()'

var feedLagQuery = 'customMetrics | where name == "feed_publish_duration" | extend outcome = tostring(customDimensions.outcome) | summarize lagging = sumif(valueCount, outcome in ("behind", "error"))'

var viewLagQuery = 'customMetrics | where name == "view_catch_up_duration" | extend outcome = tostring(customDimensions.outcome) | summarize lagging = sumif(valueCount, outcome in ("behind", "stopped", "error"))'

resource functionErrors 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-function-errors-${suffix}'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: 'eventstore: function errors'
    description: 'Function invocations failed (exceptions, 5xx): see Application Insights > Failures.'
    severity: 1
    enabled: true
    scopes: [insightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: functionErrorsQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'failures'
          operator: 'GreaterThanOrEqual'
          threshold: functionErrorThreshold
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource feedLag 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-feed-lag-${suffix}'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: 'eventstore: change feed behind'
    description: 'The change feed\'s publish runs have ended behind or in error for ${lagMinutes} minutes: GET /api/tenants/{t}/feed shows which sink and why.'
    severity: 2
    enabled: true
    scopes: [insightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: feedLagQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'lagging'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: lagPeriods, minFailingPeriodsToAlert: lagPeriods }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

resource viewLag 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${name}-view-lag-${suffix}'
  location: location
  kind: 'LogAlert'
  properties: {
    displayName: 'eventstore: views behind'
    description: 'View catch-ups have ended behind, stopped or in error for ${lagMinutes} minutes: GET /api/tenants/{t}/views shows each view\'s lag and the event it stopped at.'
    severity: 2
    enabled: true
    scopes: [insightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: viewLagQuery
          timeAggregation: 'Total'
          metricMeasureColumn: 'lagging'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: lagPeriods, minFailingPeriodsToAlert: lagPeriods }
        }
      ]
    }
    autoMitigate: true
    actions: actions
  }
}

output ruleNames array = [functionErrors.name, feedLag.name, viewLag.name]
