// Azure Managed Redis (Redis Enterprise; new Azure Cache for Redis caches can no longer be created) with
// Microsoft Entra authentication only: access keys off, the app's identity given the database's one
// access policy. Shape from AVM cache/redis-enterprise (database, access-policy-assignment).
param name string
param location string
param tags object
@description('Azure Managed Redis SKU, e.g. Balanced_B0 (smallest), Balanced_B1, MemoryOptimized_M10.')
param sku string
param highAvailability bool
@description('Principal id of the app\'s managed identity: its object id is its Redis user name.')
param principalId string

resource cache 'Microsoft.Cache/redisEnterprise@2025-07-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
  }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: highAvailability ? 'Enabled' : 'Disabled'
    publicNetworkAccess: 'Enabled'
  }
}

// NoCluster: one unsharded endpoint, so the app's plain redis-py client and its multi-key Lua scripts
// (rate limits, turn locks) work as on a single Redis. NoEviction: turn locks and hand-offs are never
// dropped to make room.
resource database 'Microsoft.Cache/redisEnterprise/databases@2025-07-01' = {
  parent: cache
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'NoCluster'
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

resource appAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-07-01' = {
  parent: database
  name: principalId
  properties: {
    accessPolicyName: 'default'
    user: {
      objectId: principalId
    }
  }
}

// No password: the app logs in with Entra tokens (REDIS_ENTRA_AUTH).
output url string = 'rediss://${cache.properties.hostName}:10000'
