// The function app on Flex Consumption (Linux, Python 3.11) under the user-assigned identity.
// Shape from Azure-Samples/functions-quickstart-python-http-azd (infra/app/api.bicep) and
// torosent/durable-functions-quickstart-python-azd (Durable Task Scheduler on Flex Consumption).
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param audioContainerName string
param appInsightsConnectionString string
param durableBackend string
@description('Durable Task Scheduler endpoint; empty with the Azure Storage backend.')
param durableTaskEndpoint string
param taskHubName string
param openAiEndpoint string
param chatDeployment string
param embeddingsDeployment string
@description('Azure AI Search endpoint; empty: knowledge stays in Postgres.')
param searchEndpoint string
param keyVaultName string
@description('Settings whose values are Key Vault references.')
param secretSettings array
param instanceMemoryMB int
param maximumInstanceCount int
@description('The app\'s DATABASE_URL: host, database and the identity\'s role; no password (Entra tokens).')
param databaseUrl string
@description('rediss:// URL of Azure Managed Redis; no password (Entra tokens).')
param redisUrl string
param webPubSubEndpoint string
param webPubSubHub string
param webPubSubUpstreamAudience string
@description('Principal id of the Web PubSub service\'s identity: the only caller of the events route.')
param webPubSubUpstreamPrincipalId string
@description('The tenant whose owners may read /api/metrics.')
param operatorTenant string

var useScheduler = durableBackend == 'durableTaskScheduler'

// Host storage by identity: blob always; queues and tables only for the Azure Storage Durable backend.
var hostStorageSettings = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
}
var azureStorageBackendSettings = {
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
}
// host.json keeps the Azure Storage provider (the local devhost and Azurite speak it); these
// app settings override it for Durable Task Scheduler ("Override host.json values",
// learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values).
var schedulerSettings = {
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
  DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${durableTaskEndpoint};Authentication=ManagedIdentity;ClientID=${identityClientId}'
}
// Key Vault references, resolved by the platform with the identity named by keyVaultReferenceIdentity.
var secretReferences = toObject(
  secretSettings,
  setting => setting,
  setting => '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${toLower(replace(setting, '_', '-'))})'
)
var appSettings = union(hostStorageSettings, useScheduler ? schedulerSettings : azureStorageBackendSettings, secretReferences, {
  TASKHUB_NAME: taskHubName
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // DefaultAzureCredential in the app picks the user-assigned identity by this id.
  AZURE_CLIENT_ID: identityClientId
  BLOB_ACCOUNT_URL: blobEndpoint
  AUDIO_CONTAINER: audioContainerName
  AZURE_OPENAI_ENDPOINT: openAiEndpoint
  AZURE_OPENAI_CHAT_DEPLOYMENT: chatDeployment
  AZURE_OPENAI_EMBEDDINGS_DEPLOYMENT: embeddingsDeployment
  AZURE_SEARCH_ENDPOINT: searchEndpoint
  AZURE_TENANT_ID: tenant().tenantId
  // Entra tokens, not passwords, for Postgres and Redis (shared/storage/entra.py).
  DATABASE_URL: databaseUrl
  DATABASE_ENTRA_AUTH: 'true'
  REDIS_URL: redisUrl
  REDIS_ENTRA_AUTH: 'true'
  WEB_PUBSUB_ENDPOINT: webPubSubEndpoint
  WEB_PUBSUB_HUB: webPubSubHub
  WEB_PUBSUB_UPSTREAM_AUDIENCE: webPubSubUpstreamAudience
  WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID: webPubSubUpstreamPrincipalId
  // Audio links handed to phone providers and browsers name the app's own https origin.
  PUBLIC_BASE_URL: 'https://${name}.azurewebsites.net'
  OPERATOR_TENANT: operatorTenant
  // The Python worker makes each invocation's trace context current, so our spans join the host's.
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
})

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the code's target by this tag (azure.yaml service `api`).
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
