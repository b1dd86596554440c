// Azure Database for PostgreSQL Flexible Server with Microsoft Entra authentication only (no password
// login exists), pgvector allow-listed. Shape from Azure-Samples/rag-postgres-openai-python
// (infra/core/database/postgresql/flexibleserver.bicep) and AVM db-for-postgre-sql/flexible-server.
// The deploying user is the Entra administrator; the post-provision step (scripts/postprovision.py)
// signs in as that user, migrates, and creates the app identity's role, which may only become vao_app.
param name string
param location string
param tags object
param databaseName string
@allowed([
  '16'
  '17'
])
param version string
param skuName string
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string
@minValue(32)
param storageSizeGB int
@minValue(7)
@maxValue(35)
param backupRetentionDays int
@description('Geo-redundant backups; fixed when the server is created.')
param geoRedundantBackup bool
@allowed([
  'Disabled'
  'SameZone'
  'ZoneRedundant'
])
@description('High availability (a standby server); not offered on the Burstable tier.')
param highAvailability string
@description('Object id of the Entra administrator (the deploying user). Empty: none (add one later).')
param adminPrincipalId string
@description('Name of the Entra administrator: a user\'s UPN, or a group\'s or service principal\'s name.')
param adminPrincipalName string
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param adminPrincipalType string
@description('A public address allowed in besides Azure services (the machine that runs the post-provision step). Empty: none.')
param clientIpAddress string

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    storage: {
      storageSizeGB: storageSizeGB
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: geoRedundantBackup ? 'Enabled' : 'Disabled'
    }
    highAvailability: {
      mode: highAvailability
    }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: tenant().tenantId
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

// 0.0.0.0 - 0.0.0.0 is "allow Azure services": the Flex Consumption app has no fixed outbound address.
resource azureServices 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = {
  parent: server
  name: 'allow-azure-services'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource client 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!empty(clientIpAddress)) {
  parent: server
  name: 'allow-deploying-client'
  properties: {
    startIpAddress: clientIpAddress
    endIpAddress: clientIpAddress
  }
}

// Server updates conflict with each other: each step waits for the one before.
resource extensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: {
    value: 'VECTOR'
    source: 'user-override'
  }
  dependsOn: [
    azureServices
    client
  ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    extensions
  ]
}

// Not a nested child: the administrator is added once the server and its settings exist.
resource admin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = if (!empty(adminPrincipalId)) {
  parent: server
  name: adminPrincipalId
  properties: {
    principalName: adminPrincipalName
    principalType: adminPrincipalType
    tenantId: tenant().tenantId
  }
  dependsOn: [
    database
  ]
}

output name string = server.name
output host string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
