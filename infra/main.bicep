// eventstore on Azure: Function App (Python 3.11, Flex Consumption), its Storage account (host storage, queues,
// payload blobs, the deployment package), PostgreSQL Flexible Server (Microsoft Entra authentication on), a Key
// Vault for the app's secrets, Application Insights with alert rules (optional), the app's own alert channels
// (each off unless its settings are given), and optionally private networking. The app reaches Storage, the
// vault and the Event Grid topic with its managed identity. Deploy with infra/deploy.sh or `azd up`;
// docs/azure.md describes it all.
targetScope = 'resourceGroup'

@description('Short name used to derive resource names (3-11 lowercase letters and digits).')
@minLength(3)
@maxLength(11)
param name string

param location string = resourceGroup().location

@description('PostgreSQL administrator login (owner role: creates tenant schemas and the application role). Used by onboarding and migrations; the running app gets it only with databaseLogin=owner.')
param postgresAdminLogin string = 'eventstoreadmin'

@secure()
@description('PostgreSQL administrator password.')
param postgresAdminPassword string

@description('PostgreSQL major version.')
@allowed(['15', '16'])
param postgresVersion string = '16'

@description('How the running app logs in to PostgreSQL. entra: its managed identity with an Entra token as password (EVENTSTORE_DATABASE_AUTH=entra), a login that is a member of the application and maintenance roles only (eventstore grant-login), and no owner DSN anywhere the app can read: the owner work (migrations, onboarding, view rebuilds, compaction) runs from deploy.sh / migrate.sh. owner: the owner DSN as a Key Vault reference, switched to the application role with SET ROLE (a process holding it can RESET ROLE to the owner); for a server without an Entra administrator.')
@allowed(['owner', 'entra'])
param databaseLogin string = 'entra'

@description('How the app\'s requests reach PostgreSQL with databaseLogin=entra. pgbouncer: the server\'s built-in PgBouncer (port 6432, transaction pooling; not offered on the Burstable tier, so it needs a General Purpose or Memory Optimized postgresSkuName), with the feed, view and retention runners\' session locks and the maintenance path on direct connections (EVENTSTORE_DIRECT_DATABASE_URL, port 5432). direct: every connection on port 5432.')
@allowed(['direct', 'pgbouncer'])
param databasePooling string = 'direct'

@description('Compute of the PostgreSQL server (e.g. Standard_B2s, Standard_D2ds_v5).')
param postgresSkuName string = 'Standard_B2s'

@description('Tier of postgresSkuName: Burstable, GeneralPurpose or MemoryOptimized. The built-in PgBouncer needs one of the last two.')
@allowed(['Burstable', 'GeneralPurpose', 'MemoryOptimized'])
param postgresTier string = 'Burstable'

@description('Object id of the Microsoft Entra principal made PostgreSQL Entra administrator (the deployer: deploy.sh passes the signed-in user\'s). It creates the app identity\'s login. Empty: no Entra administrator.')
param postgresEntraAdminObjectId string = ''

@description('Name of that principal as PostgreSQL knows it (a user\'s UPN, a group\'s or service principal\'s display name).')
param postgresEntraAdminName string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param postgresEntraAdminType string = 'User'

@description('Public IPv4 address of the machine that runs migrations and onboarding with the owner DSN (deploy.sh: DEPLOYER_IP); a firewall rule admits it. Empty: none. Ignored with privateNetworking (no public access at all).')
param deployerIpAddress string = ''

@description('Monthly partitions kept ready ahead of the current month.')
param partitionsAhead int = 3

@secure()
@description('HMAC key signing continuation tokens (EVENTSTORE_CONTINUATION_KEY), shared by every instance. The default is new at each deployment, which ends the tokens handed out before it (clients start their list again); pass a fixed one to keep them.')
param continuationKey string = newGuid()

@description('Private networking: a VNet the Function App integrates with, private endpoints and private DNS zones for PostgreSQL, Storage (blob, queue, table), Key Vault and the Event Grid topic, and public network access off on each of them (infra/modules/network.bicep). false: public endpoints, PostgreSQL behind its firewall.')
param privateNetworking bool = false

@description('Address space of the VNet (privateNetworking only).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Most instances the Flex Consumption plan scales the app out to. Each instance holds its own database connection pools (EVENTSTORE_POOL_MAX_SIZE and two small ones), so keep instances x connections under the server\'s max_connections.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Largest application connection pool per instance (EVENTSTORE_POOL_MAX_SIZE). Each instance also holds an owner and a maintenance pool of 2 at most: maximumInstanceCount x (this + 4) must stay under the server\'s max_connections (Standard_B2s: 429, some reserved), or go through PgBouncer.')
@minValue(1)
param poolMaxSize int = 5

@description('Memory of each instance in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Email address Azure Monitor alerts (function errors, feed lag, view lag) are sent to. Empty: the rules still fire and show in the portal, nobody is emailed.')
param monitorAlertEmail string = ''

var suffix = uniqueString(resourceGroup().id, name)
var storageName = toLower('${name}${take(suffix, 12)}')
var databaseName = 'eventstore'
var deploymentContainerName = 'app-package'

// No shared keys: the host, the deployment and the app's own Blob and queue clients all use the app's identity
// (EVENTSTORE_BLOB_ACCOUNT_URL, EVENTSTORE_QUEUE_ACCOUNT_URL). docs/azure.md, "Storage".
resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Flex Consumption runs the app from a package in this container, which the app's identity reads and writes.
resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

@description('Application Insights (workspace-based) for the app: the host logs and the OpenTelemetry metrics, exported only when APPLICATIONINSIGHTS_CONNECTION_STRING is set, and the alert rules on them. false: none of these.')
param appInsightsEnabled bool = true

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = if (appInsightsEnabled) {
  name: '${name}-logs-${suffix}'
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = if (appInsightsEnabled) {
  name: '${name}-ai-${suffix}'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

// Password authentication stays on for the owner login (migrations, onboarding); Entra authentication is on for
// the app's managed identity and the deployer.
resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: '${name}-pg-${suffix}'
  location: location
  sku: { name: postgresSkuName, tier: postgresTier }
  properties: {
    version: postgresVersion
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Enabled'
      tenantId: subscription().tenantId
    }
    network: { publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled' }
    storage: { storageSizeGB: 64, autoGrow: 'Enabled' }
    backup: { backupRetentionDays: 14, geoRedundantBackup: 'Disabled' }
    highAvailability: { mode: 'Disabled' }
  }
}

// The server takes one change at a time: its child resources go one after the other.
resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: postgres
  name: databaseName
  properties: { charset: 'UTF8', collation: 'en_US.utf8' }
}

// Transaction pooling, as the app expects behind port 6432 (tests/store/test_pgbouncer.py runs it against Debian's
// PgBouncer in that mode). After the database: the server takes one change at a time.
var usePgBouncer = (databasePooling == 'pgbouncer') && (databaseLogin == 'entra')

resource pgbouncerEnabled 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = if (usePgBouncer) {
  parent: postgres
  name: 'pgbouncer.enabled'
  properties: { value: 'true', source: 'user-override' }
  dependsOn: [database]
}

resource pgbouncerPoolMode 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = if (usePgBouncer) {
  parent: postgres
  name: 'pgbouncer.pool_mode'
  properties: { value: 'transaction', source: 'user-override' }
  dependsOn: [pgbouncerEnabled]
}

resource postgresEntraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = if (!(empty(postgresEntraAdminObjectId) || empty(postgresEntraAdminName))) {
  parent: postgres
  name: postgresEntraAdminObjectId
  properties: {
    principalName: postgresEntraAdminName
    principalType: postgresEntraAdminType
    tenantId: subscription().tenantId
  }
  dependsOn: [database]
}

// Without private networking the app has no fixed outbound address (Flex Consumption shares Azure's), so the
// server admits connections from Azure's addresses: 0.0.0.0 is "any Azure service", any subscription's, each
// still needing a login over TLS. With private networking the app comes through the VNet and no rule is made.
resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!privateNetworking) {
  parent: postgres
  name: 'AllowAzureServices'
  properties: { startIpAddress: '0.0.0.0', endIpAddress: '0.0.0.0' }
  dependsOn: [postgresEntraAdmin]
}

resource allowDeployer 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!(privateNetworking || empty(deployerIpAddress))) {
  parent: postgres
  name: 'Deployer'
  properties: { startIpAddress: deployerIpAddress, endIpAddress: deployerIpAddress }
  dependsOn: [allowAzure]
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${name}-plan-${suffix}'
  location: location
  sku: { name: 'FC1', tier: 'FlexConsumption' }
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
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
  }
}

// -- alerts (docs/alerts.md). A channel is on when its settings are given, so each is off by default: an empty
// parameter emits no setting at all (an empty value would not read as unset).
@description('Evaluate the alert rules and send notifications (EVENTSTORE_ALERTS_ENABLED).')
param alertsEnabled bool = true

@description('NCRONTAB (6 fields) of the alert timer (EVENTSTORE_ALERTS_SCHEDULE).')
param alertsSchedule string = '0 */1 * * * *'

@description('NCRONTAB (6 fields) of the weekly summary\'s timer (EVENTSTORE_WEEKLY_SCHEDULE).')
param weeklySchedule string = '0 0 * * * *'

@description('The weekly summary goes out from this hour (UTC) of Monday on (EVENTSTORE_WEEKLY_HOUR).')
@minValue(0)
@maxValue(23)
param weeklyHour int = 8

@description('A workflow\'s failure rate over the window above this pages (EVENTSTORE_ALERT_FAILURE_RATE); a string because Bicep has no decimals.')
param alertFailureRate string = '0.05'

@description('Executions the window must hold before its failure rate can page (EVENTSTORE_ALERT_MIN_EXECUTIONS).')
@minValue(1)
param alertMinExecutions int = 20

@description('The failure-rate rule\'s sliding window in minutes (EVENTSTORE_ALERT_WINDOW_MINUTES).')
@minValue(1)
@maxValue(1440)
param alertWindowMinutes int = 60

@description('PagerDuty severity of a page (EVENTSTORE_ALERT_SEVERITY).')
@allowed(['critical', 'error', 'warning', 'info'])
param alertSeverity string = 'error'

@description('Where people reach the app, for the links in alerts (EVENTSTORE_PUBLIC_URL). Empty: the Function App\'s own https address.')
param publicUrl string = ''

@description('Payloads of events older than this many days move to cold Blob storage (EVENTSTORE_RETENTION_DAYS).')
@minValue(1)
param retentionDays int = 90

@description('Access tier of the cold segments (EVENTSTORE_RETENTION_TIER): Cool and Cold read at once, Archive is offline until a read rehydrates (hours).')
@allowed(['Cool', 'Cold', 'Archive'])
param retentionTier string = 'Cool'

@secure()
@description('The archive key (32 bytes, base64) that wraps archived payloads\' data keys, kept in the Key Vault. Empty: nothing is archived. Keep it: without it archived payloads cannot be read.')
param archiveKey string = ''

@secure()
@description('Archive keys replaced in a rotation (comma-separated base64), kept in the Key Vault: they still open what they sealed until each retention run has re-wrapped those data keys under archiveKey. Empty: no rotation in progress.')
param archivePreviousKeys string = ''

@secure()
@description('PagerDuty Events API v2 integration key, kept in the Key Vault. Empty: no pages.')
param pagerdutyRoutingKey string = ''

@description('Base URL of the PagerDuty Events API (EVENTSTORE_PAGERDUTY_URL). Empty: PagerDuty\'s own.')
param pagerdutyUrl string = ''

@description('Page for each instance that enters the faulted state too (EVENTSTORE_ALERT_FAULTED_PAGERDUTY).')
param alertFaultedPagerduty bool = false

@secure()
@description('Slack incoming webhook URL, kept in the Key Vault. Empty: no Slack posts.')
param slackWebhookUrl string = ''

@description('More notices than this due at once go as one Slack summary post (EVENTSTORE_SLACK_SUMMARY_OVER).')
@minValue(1)
param slackSummaryOver int = 10

@description('SMTP server of the weekly email (EVENTSTORE_SMTP_HOST). Empty: no email over SMTP.')
param smtpHost string = ''

@minValue(1)
@maxValue(65535)
param smtpPort int = 587

@description('SMTP login (EVENTSTORE_SMTP_USERNAME). Empty: none.')
param smtpUsername string = ''

@secure()
@description('SMTP password, kept in the Key Vault. Empty: none.')
param smtpPassword string = ''

@description('Upgrade the SMTP connection with STARTTLS (EVENTSTORE_SMTP_STARTTLS).')
param smtpStarttls bool = true

@description('Sender of the weekly email (EVENTSTORE_ALERT_EMAIL_FROM); with ACS, an address of a domain linked to the resource.')
param alertEmailFrom string = ''

@description('The operations owner: recipients of the weekly email, comma-separated (EVENTSTORE_ALERT_EMAIL_TO).')
param alertEmailTo string = ''

@description('Name of an existing Azure Communication Services resource in this resource group, with an email domain linked: the weekly email goes through it with the app\'s managed identity, which gets Contributor on that resource only. Empty: none.')
param acsEmailResourceName string = ''

@description('Endpoint of an Azure Communication Services resource elsewhere, used with the app\'s managed identity (EVENTSTORE_ACS_EMAIL_ENDPOINT; grant the identity its role yourself). Empty: the endpoint of acsEmailResourceName, if any.')
param acsEmailEndpoint string = ''

@secure()
@description('Azure Communication Services connection string (endpoint and access key), kept in the Key Vault: the alternative to the managed identity. Empty: none.')
param acsEmailConnectionString string = ''

// -- the operator console (/api/console/): only behind App Service Authentication with Microsoft Entra ID, which
// puts the signed-in operator in X-MS-CLIENT-PRINCIPAL-NAME and strips that header from every other request.
@description('Client id of the Entra ID app registration operators sign in to the console with (its redirect URI: the consoleSignInRedirectUri output). Empty: no App Service Authentication, and the console is off (EVENTSTORE_CONSOLE_ACCESS).')
param consoleAuthClientId string = ''

@description('Entra ID tenant of that app registration, whose members can sign in. Default: the subscription\'s.')
param consoleAuthTenantId string = subscription().tenantId

@secure()
@description('Client secret of that app registration, kept in the Key Vault (sign-in then uses the authorization code flow). Empty: the registration must issue ID tokens (implicit grant).')
param consoleAuthClientSecret string = ''

// The app's secrets: settings hold Key Vault references, never the values. RBAC only (no access policies);
// soft delete keeps a deleted secret or vault recoverable for 90 days.
resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: '${name}-kv-${take(suffix, 9)}'
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: 'AzureServices' }
  }
}

var ownerDsn = 'postgresql://${postgresAdminLogin}:${uriComponent(postgresAdminPassword)}@${postgres.properties.fullyQualifiedDomainName}:5432/${databaseName}?sslmode=require'

// One secret per value given; a reference names the secret without a version, so the app reads the latest.
// The owner DSN is kept only while the app logs in as the owner: the app's identity may read every secret of
// this vault, so with databaseLogin=entra the owner password must not be in it.
resource databaseUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (databaseLogin == 'owner') {
  parent: vault
  name: 'database-url'
  properties: { value: ownerDsn, contentType: 'EVENTSTORE_DATABASE_URL' }
}

resource continuationKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(continuationKey)) {
  parent: vault
  name: 'continuation-key'
  properties: { value: continuationKey, contentType: 'EVENTSTORE_CONTINUATION_KEY' }
}

resource pagerdutySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(pagerdutyRoutingKey)) {
  parent: vault
  name: 'pagerduty-routing-key'
  properties: { value: pagerdutyRoutingKey, contentType: 'EVENTSTORE_PAGERDUTY_ROUTING_KEY' }
}

resource archiveKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(archiveKey)) {
  parent: vault
  name: 'archive-key'
  properties: { value: archiveKey, contentType: 'EVENTSTORE_ARCHIVE_KEY' }
}

resource archivePreviousKeysSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(archivePreviousKeys)) {
  parent: vault
  name: 'archive-previous-keys'
  properties: { value: archivePreviousKeys, contentType: 'EVENTSTORE_ARCHIVE_PREVIOUS_KEYS' }
}

resource slackSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackWebhookUrl)) {
  parent: vault
  name: 'slack-webhook-url'
  properties: { value: slackWebhookUrl, contentType: 'EVENTSTORE_SLACK_WEBHOOK_URL' }
}

resource smtpPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(smtpPassword)) {
  parent: vault
  name: 'smtp-password'
  properties: { value: smtpPassword, contentType: 'EVENTSTORE_SMTP_PASSWORD' }
}

resource acsConnectionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(acsEmailConnectionString)) {
  parent: vault
  name: 'acs-email-connection-string'
  properties: { value: acsEmailConnectionString, contentType: 'EVENTSTORE_ACS_EMAIL_CONNECTION_STRING' }
}

resource consoleAuthSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!(empty(consoleAuthClientId) || empty(consoleAuthClientSecret))) {
  parent: vault
  name: 'console-auth-client-secret'
  properties: { value: consoleAuthClientSecret, contentType: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET' }
}

resource acs 'Microsoft.Communication/communicationServices@2023-04-01' existing = if (!empty(acsEmailResourceName)) {
  name: acsEmailResourceName
}

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  params: {
    name: name
    suffix: suffix
    location: location
    addressPrefix: vnetAddressPrefix
    storageAccountId: storage.id
    keyVaultId: vault.id
    postgresServerId: postgres.id
    feedTopicId: feedTopic.id
  }
}

// Flex Consumption: the runtime, the scale limits and the deployment package's container are the site's
// functionAppConfig, not app settings (FUNCTIONS_WORKER_RUNTIME, WEBSITE_CONTENT* and the like are refused).
// The app settings are a resource of their own, written after the identity may read the vault and Storage: the
// platform resolves the references when the settings change, and a reference it cannot resolve stays the
// literal text.
resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: '${name}-func-${suffix}'
  location: location
  kind: 'functionapp,linux'
  tags: { 'azd-service-name': 'api' }
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: 'SystemAssigned'
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : null
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      runtime: { name: 'python', version: '3.11' }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
    }
  }
  dependsOn: [database, allowAzure, deploymentContainer]
}

// The host's storage through the app's identity (no key): triggers, timers' leases, the queues it reads.
var baseSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  EVENTSTORE_BLOB_ACCOUNT_URL: storage.properties.primaryEndpoints.blob
  EVENTSTORE_QUEUE_ACCOUNT_URL: storage.properties.primaryEndpoints.queue
  EVENTSTORE_PARTITIONS_AHEAD: string(partitionsAhead)
  EVENTSTORE_POOL_MAX_SIZE: string(poolMaxSize)
  EVENTSTORE_FEED_ENABLED: string(feedEnabled)
  EVENTSTORE_FEED_SCHEDULE: feedSchedule
  EVENTSTORE_VIEWS_SCHEDULE: viewsSchedule
  EVENTSTORE_EVENTGRID_ENDPOINT: feedTopic.properties.endpoint
  EVENTSTORE_EVENTGRID_AUTH: 'entra'
}

// owner: the owner DSN from the vault (the app switches to the application role on each connection). entra:
// the managed identity's login, whose DSN holds no password (an Entra token is the password of each new
// connection); the owner DSN is nowhere the app can read. With PgBouncer, requests go to 6432 and the
// runners' sessions to 5432.
var appLogin = 'postgresql://${uriComponent(functionApp.name)}@${postgres.properties.fullyQualifiedDomainName}'
var directDatabaseUrl = '${appLogin}:5432/${databaseName}?sslmode=require'

var databaseSettings = (databaseLogin == 'entra') ? {
  EVENTSTORE_DATABASE_AUTH: 'entra'
  EVENTSTORE_APP_DATABASE_URL: usePgBouncer ? '${appLogin}:6432/${databaseName}?sslmode=require' : directDatabaseUrl
  EVENTSTORE_DIRECT_DATABASE_URL: usePgBouncer ? directDatabaseUrl : ''
} : {
  EVENTSTORE_DATABASE_URL: '@Microsoft.KeyVault(SecretUri=${databaseUrlSecret.properties.secretUri})'
}

var continuationSettings = empty(continuationKey) ? {} : {
  EVENTSTORE_CONTINUATION_KEY: '@Microsoft.KeyVault(SecretUri=${continuationKeySecret.properties.secretUri})'
}

var insightsSettings = appInsightsEnabled ? {
  APPLICATIONINSIGHTS_CONNECTION_STRING: insights.properties.ConnectionString
} : {}

var alertSettings = {
  EVENTSTORE_ALERTS_ENABLED: string(alertsEnabled)
  EVENTSTORE_ALERTS_SCHEDULE: alertsSchedule
  EVENTSTORE_WEEKLY_SCHEDULE: weeklySchedule
  EVENTSTORE_WEEKLY_HOUR: string(weeklyHour)
  EVENTSTORE_ALERT_FAILURE_RATE: alertFailureRate
  EVENTSTORE_ALERT_MIN_EXECUTIONS: string(alertMinExecutions)
  EVENTSTORE_ALERT_WINDOW_MINUTES: string(alertWindowMinutes)
  EVENTSTORE_ALERT_SEVERITY: alertSeverity
  EVENTSTORE_PUBLIC_URL: empty(publicUrl) ? 'https://${functionApp.properties.defaultHostName}' : publicUrl
  EVENTSTORE_ALERT_FAULTED_PAGERDUTY: string(alertFaultedPagerduty)
  EVENTSTORE_SLACK_SUMMARY_OVER: string(slackSummaryOver)
  EVENTSTORE_SMTP_PORT: string(smtpPort)
  EVENTSTORE_SMTP_STARTTLS: string(smtpStarttls)
}

var retentionSettings = {
  EVENTSTORE_RETENTION_DAYS: string(retentionDays)
  EVENTSTORE_RETENTION_TIER: retentionTier
}

var archiveKeySettings = empty(archiveKey) ? {} : {
  EVENTSTORE_ARCHIVE_KEY: '@Microsoft.KeyVault(SecretUri=${archiveKeySecret.properties.secretUri})'
}

var archivePreviousKeysSettings = empty(archivePreviousKeys) ? {} : {
  EVENTSTORE_ARCHIVE_PREVIOUS_KEYS: '@Microsoft.KeyVault(SecretUri=${archivePreviousKeysSecret.properties.secretUri})'
}

var pagerdutySettings = empty(pagerdutyRoutingKey) ? {} : {
  EVENTSTORE_PAGERDUTY_ROUTING_KEY: '@Microsoft.KeyVault(SecretUri=${pagerdutySecret.properties.secretUri})'
}

var pagerdutyUrlSettings = empty(pagerdutyUrl) ? {} : { EVENTSTORE_PAGERDUTY_URL: pagerdutyUrl }

var slackSettings = empty(slackWebhookUrl) ? {} : {
  EVENTSTORE_SLACK_WEBHOOK_URL: '@Microsoft.KeyVault(SecretUri=${slackSecret.properties.secretUri})'
}

var smtpHostSettings = empty(smtpHost) ? {} : { EVENTSTORE_SMTP_HOST: smtpHost }

var smtpUsernameSettings = empty(smtpUsername) ? {} : { EVENTSTORE_SMTP_USERNAME: smtpUsername }

var smtpPasswordSettings = empty(smtpPassword) ? {} : {
  EVENTSTORE_SMTP_PASSWORD: '@Microsoft.KeyVault(SecretUri=${smtpPasswordSecret.properties.secretUri})'
}

var emailFromSettings = empty(alertEmailFrom) ? {} : { EVENTSTORE_ALERT_EMAIL_FROM: alertEmailFrom }

var emailToSettings = empty(alertEmailTo) ? {} : { EVENTSTORE_ALERT_EMAIL_TO: alertEmailTo }

var acsEndpoint = empty(acsEmailEndpoint) ? (empty(acsEmailResourceName) ? '' : 'https://${acs.properties.hostName}') : acsEmailEndpoint

var acsEndpointSettings = empty(acsEndpoint) ? {} : { EVENTSTORE_ACS_EMAIL_ENDPOINT: acsEndpoint }

var acsConnectionSettings = empty(acsEmailConnectionString) ? {} : {
  EVENTSTORE_ACS_EMAIL_CONNECTION_STRING: '@Microsoft.KeyVault(SecretUri=${acsConnectionSecret.properties.secretUri})'
}

// Never open in Azure: without App Service Authentication in front, a client could send the principal header itself.
var consoleSettings = {
  EVENTSTORE_CONSOLE_ACCESS: empty(consoleAuthClientId) ? 'off' : 'entra'
}

// App Service Authentication reads the client secret from this setting (clientSecretSettingName below).
var consoleAuthSecretSettings = (empty(consoleAuthClientId) || empty(consoleAuthClientSecret)) ? {} : {
  MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: '@Microsoft.KeyVault(SecretUri=${consoleAuthSecret.properties.secretUri})'
}

// The app's managed identity reads the vault's secrets (the Key Vault references), nothing else of it.
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
resource vaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, functionApp.id, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Sending email through Communication Services with Entra ID takes a role on that resource.
var contributor = 'b24988ac-6180-42a0-ab88-20f7382dd24c'
resource acsSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(acsEmailResourceName)) {
  name: guid(acs.id, functionApp.id, contributor)
  scope: acs
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', contributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}


// What the host and the app do with Storage, through the app's identity: blobs (the deployment package, timer
// leases, payloads and cold segments: Owner, as Flex Consumption's deployment storage requires), queues
// (ingest, replay, their poison queues) and tables (the host's own bookkeeping).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
resource storageTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Replaces the app's settings as a whole: every setting the app gets is listed here.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(baseSettings, databaseSettings, continuationSettings, insightsSettings, alertSettings, retentionSettings, archiveKeySettings, archivePreviousKeysSettings, pagerdutySettings, pagerdutyUrlSettings, slackSettings, smtpHostSettings, smtpUsernameSettings, smtpPasswordSettings, emailFromSettings, emailToSettings, acsEndpointSettings, acsConnectionSettings, consoleSettings, consoleAuthSecretSettings)
  dependsOn: [vaultReader, acsSender, storageBlobOwner, storageQueueContributor, storageTableContributor]
}

// Signs operators in for the console without requiring it of anyone else: the JSON API's callers (function keys)
// pass through as before; a signed-in browser carries X-MS-CLIENT-PRINCIPAL-NAME, which the console requires.
// After the app settings: the client secret setting it names must exist, and two config writes must not race.
resource consoleAuth 'Microsoft.Web/sites/config@2023-12-01' = if (!empty(consoleAuthClientId)) {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: { enabled: true }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: { requireHttps: true }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: union({
          clientId: consoleAuthClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${consoleAuthTenantId}/v2.0'
        }, empty(consoleAuthClientSecret) ? {} : { clientSecretSettingName: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET' })
      }
    }
    // The console reads only the principal header: the provider's tokens need not be kept (and a Consumption
    // app has no shared file system to keep them in).
    login: { tokenStore: { enabled: false } }
  }
  dependsOn: [appSettings]
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

module monitoring 'modules/monitoring.bicep' = if (appInsightsEnabled) {
  name: 'monitoring'
  params: {
    name: name
    suffix: suffix
    location: location
    insightsId: insights.id
    alertEmail: monitorAlertEmail
  }
}

// Register it on the console's app registration (Web platform); known before consoleAuthClientId is given.
output consoleSignInRedirectUri string = 'https://${functionApp.properties.defaultHostName}/.auth/login/aad/callback'
output feedTopicEndpoint string = feedTopic.properties.endpoint
output functionAppName string = functionApp.name
output functionAppPrincipalId string = functionApp.identity.principalId
output keyVaultName string = vault.name
output postgresHost string = postgres.properties.fullyQualifiedDomainName
output postgresAdminLogin string = postgresAdminLogin
output databaseName string = databaseName
output databaseLogin string = databaseLogin
output databasePooling string = usePgBouncer ? 'pgbouncer' : 'direct'
output storageAccountName string = storage.name
