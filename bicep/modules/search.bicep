// Azure AI Search for knowledge (hybrid text + vector). Keys are off: the app uses Entra tokens
// (shared/knowledge/azure_search.py) and creates its index itself.
param name string
param location string
param tags object
@allowed([
  'basic'
  'standard'
])
param sku string
@description('Principal id of the app\'s managed identity.')
param principalId string

var searchIndexDataContributor = '8ebe5a00-799e-43f5-93ac-243d3dce84a7'
// Creating and updating the index is a control-plane action over the data plane.
var searchServiceContributor = '7ca78c08-252a-4471-8644-bb5ff32d4ba0'

resource search 'Microsoft.Search/searchServices@2023-11-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: sku }
  properties: {
    replicaCount: 1
    partitionCount: 1
    hostingMode: 'default'
    publicNetworkAccess: 'enabled'
    disableLocalAuth: true
  }
}

resource indexData 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, searchIndexDataContributor)
  scope: search
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', searchIndexDataContributor)
  }
}

resource indexes 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(search.id, principalId, searchServiceContributor)
  scope: search
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', searchServiceContributor)
  }
}

output endpoint string = 'https://${search.name}.search.windows.net'
