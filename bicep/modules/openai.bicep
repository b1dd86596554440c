// Azure OpenAI with the chat and embeddings deployments the agent and knowledge search use.
// Keys are off: the app asks for Entra tokens (shared/agent/chain.py, DefaultAzureCredential).
param name string
param location string
param tags object
@description('Chat model: { name, version, capacity }.')
param chatModel object
@description('Embeddings model: { name, version, capacity }.')
param embeddingsModel object
@description('Principal id of the app\'s managed identity.')
param principalId string

var cognitiveServicesOpenAiUser = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
var models = [
  chatModel
  embeddingsModel
]

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: { name: 'S0' }
  properties: {
    // A custom subdomain is what Entra token authentication needs.
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

// One at a time: parallel deployments on one account conflict.
@batchSize(1)
resource deployments 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = [for model in models: {
  parent: account
  name: model.name
  sku: {
    name: 'GlobalStandard'
    capacity: model.capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: model.name
      version: model.version
    }
  }
}]

resource openAiUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, cognitiveServicesOpenAiUser)
  scope: account
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', cognitiveServicesOpenAiUser)
  }
}

output endpoint string = account.properties.endpoint
output chatDeployment string = deployments[0].name
output embeddingsDeployment string = deployments[1].name
