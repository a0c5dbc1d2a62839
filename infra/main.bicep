// eventstore on Azure: Function App (Python 3.11, Linux), its Storage account (queues, payload blobs),
// PostgreSQL Flexible Server, Application Insights. Deploy with infra/deploy.sh.
targetScope = 'resourceGroup'

@description('Short name used to derive resource names (3-11 lowercase letters and digits).')
@minLength(3)
@maxLength(11)
param name string

param location string = resourceGroup().location

@description('PostgreSQL administrator login (owner role: creates tenant schemas and the application role).')
param postgresAdminLogin string = 'eventstoreadmin'

@secure()
@description('PostgreSQL administrator password.')
param postgresAdminPassword string

@description('PostgreSQL major version.')
@allowed(['15', '16'])
param postgresVersion string = '16'

@description('Monthly partitions kept ready ahead of the current month.')
param partitionsAhead int = 3

@secure()
@description('HMAC key signing continuation tokens (EVENTSTORE_CONTINUATION_KEY), shared by every instance. The default is new at each deployment, which ends the tokens handed out before it (clients start their list again); pass a fixed one to keep them.')
param continuationKey string = newGuid()

var suffix = uniqueString(resourceGroup().id, name)
var storageName = toLower('${name}${take(suffix, 12)}')
var databaseName = 'eventstore'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${name}-logs-${suffix}'
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${name}-ai-${suffix}'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2023-06-01-preview' = {
  name: '${name}-pg-${suffix}'
  location: location
  sku: { name: 'Standard_B2s', tier: 'Burstable' }
  properties: {
    version: postgresVersion
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    storage: { storageSizeGB: 64, autoGrow: 'Enabled' }
    backup: { backupRetentionDays: 14, geoRedundantBackup: 'Disabled' }
    highAvailability: { mode: 'Disabled' }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2023-06-01-preview' = {
  parent: postgres
  name: databaseName
  properties: { charset: 'UTF8', collation: 'en_US.utf8' }
}

// Lets Azure services (the Function App) reach the server; replace with VNet integration for production.
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2023-06-01-preview' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
}

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  name: '${name}-plan-${suffix}'
  location: location
  sku: { name: 'Y1', tier: 'Dynamic' }
  kind: 'functionapp'
  properties: { reserved: true }
}

@description('Publish the change feed (the Event Grid topic below); false switches it off for the deployment.')
param feedEnabled bool = true

@description('NCRONTAB (6 fields) of the feed publisher timer, the safety net under the per-append nudge.')
param feedSchedule string = '*/5 * * * * *'

@description('NCRONTAB (6 fields) of the views timer: the safety net under the nudge after appends.')
param viewsSchedule string = '*/5 * * * * *'

// The change feed's topic: CloudEvents 1.0 in, Entra ID only (no keys to leak or rotate).
resource feedTopic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: '${name}-feed-${suffix}'
  location: location
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

var storageConnection = 'DefaultEndpointsProtocol=https;AccountName=${storage.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${storage.listKeys().keys[0].value}'
var ownerDsn = 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/${databaseName}?sslmode=require'

resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  name: '${name}-func-${suffix}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'Python|3.11'
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: [
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'python' }
        { name: 'AzureWebJobsStorage', value: storageConnection }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'SCM_DO_BUILD_DURING_DEPLOYMENT', value: 'true' }
        { name: 'EVENTSTORE_DATABASE_URL', value: ownerDsn }
        { name: 'EVENTSTORE_PARTITIONS_AHEAD', value: string(partitionsAhead) }
        { name: 'EVENTSTORE_FEED_ENABLED', value: string(feedEnabled) }
        { name: 'EVENTSTORE_FEED_SCHEDULE', value: feedSchedule }
        { name: 'EVENTSTORE_VIEWS_SCHEDULE', value: viewsSchedule }
        { name: 'EVENTSTORE_EVENTGRID_ENDPOINT', value: feedTopic.properties.endpoint }
        { name: 'EVENTSTORE_EVENTGRID_AUTH', value: 'entra' }
        { name: 'EVENTSTORE_CONTINUATION_KEY', value: continuationKey }
      ]
    }
  }
  dependsOn: [database, allowAzure]
}

// The app's managed identity may publish to the topic (DefaultAzureCredential picks it up).
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'
resource feedSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(feedTopic.id, functionApp.id, eventGridDataSender)
  scope: feedTopic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output feedTopicEndpoint string = feedTopic.properties.endpoint
output functionAppName string = functionApp.name
output postgresHost string = postgres.properties.fullyQualifiedDomainName
output storageAccountName string = storage.name
