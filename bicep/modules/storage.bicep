// Storage for the Functions host, the deployment package, turn audio and knowledge sources.
// Shared keys are off: the app reaches it with its managed identity only.
param name string
param location string
param tags object
param deploymentContainerName string
param audioRetentionDays int
@description('Principal id of the app\'s managed identity.')
param principalId string
param durableBackend string

var audioContainerName = 'audio'
var knowledgeContainerName = 'knowledge'
// Well-known built-in role ids (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
  }

  resource blobs 'blobServices' = {
    name: 'default'

    resource deployment 'containers' = {
      name: deploymentContainerName
    }

    resource audio 'containers' = {
      name: audioContainerName
    }

    resource knowledge 'containers' = {
      name: knowledgeContainerName
    }
  }

  resource lifecycle 'managementPolicies' = {
    name: 'default'
    properties: {
      policy: {
        rules: [
          {
            name: 'expire-turn-audio'
            enabled: true
            type: 'Lifecycle'
            definition: {
              filters: {
                blobTypes: [ 'blockBlob' ]
                prefixMatch: [ '${audioContainerName}/' ]
              }
              actions: {
                baseBlob: {
                  delete: { daysAfterModificationGreaterThan: audioRetentionDays }
                }
              }
            }
          }
        ]
      }
    }
  }
}

// The Functions host keeps its leases and the deployment package in Blob; the app writes audio.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
  }
}

// Queues and tables only for the Azure Storage Durable backend.
resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (durableBackend == 'azureStorage') {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (durableBackend == 'azureStorage') {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output audioContainerName string = audioContainerName
