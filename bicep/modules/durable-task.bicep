// Durable Task Scheduler: the managed Durable Functions backend (scheduler + task hub), reached with
// the app's identity. Shape from Azure-Samples/Durable-Task-Scheduler (dts.bicep, dts-Access.bicep).
param name string
param location string
param tags object
@description('Principal id of the app\'s managed identity.')
param principalId string
@description('Object id of the deploying user (dashboard access). Empty: none.')
param userPrincipalId string

var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // An empty allow-list denies every call; access is still by Entra role only.
    ipAllowlist: [ '0.0.0.0/0' ]
    sku: { name: 'Consumption' }
  }

  resource taskHub 'taskHubs' = {
    name: 'voiceagent'
  }
}

resource appAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, principalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
  }
}

resource userAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(scheduler.id, userPrincipalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    principalId: userPrincipalId
    principalType: 'User'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
  }
}

output endpoint string = scheduler.properties.endpoint
output taskHubName string = scheduler::taskHub.name
