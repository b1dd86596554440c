// Azure Web PubSub for browser and app sessions: local auth off, so the app reaches the service with
// its identity (role by well-known id) and the service calls the app's event handler with a token of
// its own identity. Shapes from AVM signal-r-service/web-pub-sub and the hub's eventHandlers auth block.
param name string
param location string
param tags object
@allowed([
  'Free_F1'
  'Standard_S1'
  'Premium_P1'
])
param sku string
param hubName string
@description('The function app\'s host name: the hub\'s events go to its /api/realtime/events route.')
param appHostName string
@description('Audience of the token the service sends with each event; the app checks it.')
param upstreamAudience string
@description('Principal id of the app\'s managed identity.')
param principalId string

var webPubSubServiceOwner = '12cf5a90-567b-43ae-8102-96cf46c7d9b4'

resource service 'Microsoft.SignalRService/webPubSub@2024-03-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: 1
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    disableLocalAuth: true
    disableAadAuth: false
    publicNetworkAccess: 'Enabled'
  }
}

resource hub 'Microsoft.SignalRService/webPubSub/hubs@2024-03-01' = {
  parent: service
  name: hubName
  properties: {
    anonymousConnectPolicy: 'deny'
    eventHandlers: [
      {
        urlTemplate: 'https://${appHostName}/api/realtime/events'
        userEventPattern: '*'
        systemEvents: [
          'connect'
          'connected'
          'disconnected'
        ]
        auth: {
          type: 'ManagedIdentity'
          managedIdentity: {
            resource: upstreamAudience
          }
        }
      }
    ]
  }
}

// Client access URLs and sending to groups, by identity: the data plane role, nothing broader.
resource appOwns 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(service.id, principalId, webPubSubServiceOwner)
  scope: service
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', webPubSubServiceOwner)
  }
}

output endpoint string = 'https://${service.properties.hostName}'
output hubName string = hub.name
@description('The service\'s own identity: the app accepts event tokens only from it.')
output principalId string = service.identity.principalId
