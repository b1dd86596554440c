// The one identity the function app uses for every Azure service it reaches.
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
// The identity's Postgres role has this name (pgaadauth_create_principal_with_oid, post-provision).
output name string = identity.name
