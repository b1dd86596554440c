// Voice Agent Orchestrator on Azure: one resource group holding the core services, every one reached
// with the app's user-assigned managed identity (no keys). Layout and names follow the azd templates
// Azure-Samples/functions-quickstart-python-http-azd and durable-functions-quickstart-python-azd.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource (one that offers Flex Consumption).')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the deploying user: the Postgres Entra administrator (post-provision step) and given the Durable Task dashboard role. Empty: none.')
param principalId string = ''

@description('Name of the deploying user (UPN), the Postgres Entra administrator\'s role name.')
param principalName string = deployer().userPrincipalName

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('What principalId is: a service principal when a pipeline deploys.')
param principalType string = 'User'

@description('Public address of the machine that runs the post-provision step, let through the Postgres firewall. Empty: none (run the step from inside Azure).')
param clientIpAddress string = ''

@allowed([
  'durableTaskScheduler'
  'azureStorage'
])
@description('Durable Functions backend: Durable Task Scheduler (default) or the Azure Storage provider.')
param durableBackend string = 'durableTaskScheduler'

@allowed([
  2048
  4096
])
@description('Memory of each Flex Consumption instance, in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most Flex Consumption instances the app scales out to.')
param maximumInstanceCount int = 100

@minValue(1)
@maxValue(365)
@description('Days a turn\'s audio is kept in Blob storage before the lifecycle rule deletes it.')
param audioRetentionDays int = 30

@description('Azure OpenAI chat model deployment.')
param chatModel object = {
  name: 'gpt-4o-mini'
  version: '2024-07-18'
  capacity: 30
}

@description('Azure OpenAI embeddings model deployment.')
param embeddingsModel object = {
  name: 'text-embedding-3-small'
  version: '1'
  capacity: 30
}

@description('Address alerts are mailed to. Empty: alerts show in the portal only.')
param alertEmail string = ''

@description('Azure AI Search for knowledge. Off: knowledge is searched in Postgres (full text).')
param searchEnabled bool = false

@allowed([
  'basic'
  'standard'
])
@description('Azure AI Search tier, when enabled.')
param searchSku string = 'basic'

@allowed([
  '16'
  '17'
])
@description('Postgres major version.')
param postgresVersion string = '17'

@description('Postgres compute: Standard_B1ms (Burstable) is the smallest; high availability needs GeneralPurpose or MemoryOptimized.')
param postgresSku object = {
  name: 'Standard_B1ms'
  tier: 'Burstable'
}

@minValue(32)
@description('Postgres storage in GB.')
param postgresStorageSizeGB int = 32

@minValue(7)
@maxValue(35)
@description('Days of Postgres point-in-time backups.')
param postgresBackupRetentionDays int = 7

@description('Geo-redundant Postgres backups (fixed once the server exists; not offered in every region).')
param postgresGeoRedundantBackup bool = false

@allowed([
  'Disabled'
  'SameZone'
  'ZoneRedundant'
])
@description('Postgres high availability (a standby server, twice the compute cost).')
param postgresHighAvailability string = 'Disabled'

@description('Azure Managed Redis SKU.')
param redisSku string = 'Balanced_B0'

@description('Azure Managed Redis high availability (a replica, twice the cost).')
param redisHighAvailability bool = false

@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
@description('Azure Web PubSub tier (Free_F1: 20 connections, no SLA).')
param webPubSubSku string = 'Standard_S1'

@description('Audience of the token Web PubSub sends with each event: an Azure service\'s resource id (any service principal may ask for one, so the app also checks the service\'s own principal id) or the App ID URI of an app registration of yours.')
param webPubSubUpstreamAudience string = 'https://management.azure.com'

@description('The tenant whose owners may read the deployment-wide /api/metrics (OPERATOR_TENANT): the agent files\' tenant, which the post-provision step syncs, unless you name another.')
param operatorTenant string = 'demo'

@description('App settings read from Key Vault (secret name: the setting in lower case, `_` as `-`). Store each secret before the app starts.')
param secretSettings array = [
  'AUDIO_URL_SIGNING_KEY'
]

var tags = { 'azd-env-name': environmentName }
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var functionAppName = 'func-${resourceToken}'
var webPubSubHub = 'voice'
// Known before the app exists, so Web PubSub's hub (whose identity the app's settings name) can point at it.
var functionAppHostName = '${functionAppName}.azurewebsites.net'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    audioRetentionDays: audioRetentionDays
    principalId: identity.outputs.principalId
    durableBackend: durableBackend
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
  }
}

module durableTask 'modules/durable-task.bicep' = if (durableBackend == 'durableTaskScheduler') {
  name: 'durable-task'
  scope: rg
  params: {
    name: 'dts-${resourceToken}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module openai 'modules/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: 'oai-${resourceToken}'
    location: location
    tags: tags
    chatModel: chatModel
    embeddingsModel: embeddingsModel
    principalId: identity.outputs.principalId
  }
}

module keyVault 'modules/key-vault.bicep' = {
  name: 'key-vault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    principalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module search 'modules/search.bicep' = if (searchEnabled) {
  name: 'search'
  scope: rg
  params: {
    name: 'srch-${resourceToken}'
    location: location
    tags: tags
    sku: searchSku
    principalId: identity.outputs.principalId
  }
}

module postgres 'modules/postgres.bicep' = {
  name: 'postgres'
  scope: rg
  params: {
    name: 'psql-${resourceToken}'
    location: location
    tags: tags
    databaseName: 'voiceagent'
    version: postgresVersion
    skuName: postgresSku.name
    skuTier: postgresSku.tier
    storageSizeGB: postgresStorageSizeGB
    backupRetentionDays: postgresBackupRetentionDays
    geoRedundantBackup: postgresGeoRedundantBackup
    highAvailability: postgresHighAvailability
    adminPrincipalId: principalId
    adminPrincipalName: principalName
    adminPrincipalType: principalType
    clientIpAddress: clientIpAddress
  }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: {
    name: 'redis-${resourceToken}'
    location: location
    tags: tags
    sku: redisSku
    highAvailability: redisHighAvailability
    principalId: identity.outputs.principalId
  }
}

module webPubSub 'modules/webpubsub.bicep' = {
  name: 'webpubsub'
  scope: rg
  params: {
    name: 'wps-${resourceToken}'
    location: location
    tags: tags
    sku: webPubSubSku
    hubName: webPubSubHub
    appHostName: functionAppHostName
    upstreamAudience: webPubSubUpstreamAudience
    principalId: identity.outputs.principalId
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    audioContainerName: storage.outputs.audioContainerName
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    durableBackend: durableBackend
    durableTaskEndpoint: durableBackend == 'durableTaskScheduler' ? durableTask!.outputs.endpoint : ''
    taskHubName: durableBackend == 'durableTaskScheduler' ? durableTask!.outputs.taskHubName : 'voiceagent'
    openAiEndpoint: openai.outputs.endpoint
    chatDeployment: openai.outputs.chatDeployment
    embeddingsDeployment: openai.outputs.embeddingsDeployment
    searchEndpoint: searchEnabled ? search!.outputs.endpoint : ''
    keyVaultName: keyVault.outputs.name
    secretSettings: secretSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    databaseUrl: databaseUrl
    redisUrl: redis.outputs.url
    webPubSubEndpoint: webPubSub.outputs.endpoint
    webPubSubHub: webPubSub.outputs.hubName
    webPubSubUpstreamAudience: webPubSubUpstreamAudience
    webPubSubUpstreamPrincipalId: webPubSub.outputs.principalId
    operatorTenant: operatorTenant
  }
}

// The app logs in as its identity's role (created by the post-provision step), with tokens.
var databaseUrl = 'postgresql://${identity.outputs.name}@${postgres.outputs.host}:5432/${postgres.outputs.databaseName}?sslmode=require'

// azd writes these into the environment's .env (`azd env get-values`).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = functionApp.outputs.uri
output BLOB_ACCOUNT_URL string = storage.outputs.blobEndpoint
output AUDIO_CONTAINER string = storage.outputs.audioContainerName
output AZURE_OPENAI_ENDPOINT string = openai.outputs.endpoint
output AZURE_OPENAI_CHAT_DEPLOYMENT string = openai.outputs.chatDeployment
output AZURE_OPENAI_EMBEDDINGS_DEPLOYMENT string = openai.outputs.embeddingsDeployment
output AZURE_SEARCH_ENDPOINT string = searchEnabled ? search!.outputs.endpoint : ''
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output DATABASE_URL string = databaseUrl
output REDIS_URL string = redis.outputs.url
output WEB_PUBSUB_ENDPOINT string = webPubSub.outputs.endpoint
output PUBLIC_BASE_URL string = functionApp.outputs.uri
// For the post-provision step: who administers Postgres, and whose role it creates.
output DATABASE_ADMIN string = principalName
output AZURE_IDENTITY_NAME string = identity.outputs.name
output AZURE_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output TASKHUB_NAME string = durableBackend == 'durableTaskScheduler' ? durableTask!.outputs.taskHubName : 'voiceagent'
