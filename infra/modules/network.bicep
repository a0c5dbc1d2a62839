// Private networking for eventstore (main.bicep deploys this only with privateNetworking=true): a VNet with a
// subnet the Function App integrates with (Flex Consumption: delegated to Microsoft.App/environments) and one
// for private endpoints; a private endpoint and private DNS zone for each service the app reaches: PostgreSQL,
// Storage (blob, queue, table), Key Vault and the Event Grid topic. The services themselves turn public access
// off in main.bicep under the same parameter.

param name string
param suffix string
param location string

@description('Address space of the VNet; the two subnets take its first two /24s.')
param addressPrefix string = '10.40.0.0/16'

param storageAccountId string
param keyVaultId string
param postgresServerId string
param feedTopicId string

var appSubnetPrefix = cidrSubnet(addressPrefix, 24, 0)
var endpointSubnetPrefix = cidrSubnet(addressPrefix, 24, 1)

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: '${name}-vnet-${suffix}'
  location: location
  properties: {
    addressSpace: { addressPrefixes: [addressPrefix] }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          delegations: [
            { name: 'flex-consumption', properties: { serviceName: 'Microsoft.App/environments' } }
          ]
        }
      }
      {
        name: 'endpoints'
        properties: {
          addressPrefix: endpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

// One entry per private endpoint: the service, its sub-resource (group id) and the zone its name resolves in.
var endpoints = [
  { key: 'blob', target: storageAccountId, group: 'blob', zone: 'privatelink.blob.${environment().suffixes.storage}' }
  { key: 'queue', target: storageAccountId, group: 'queue', zone: 'privatelink.queue.${environment().suffixes.storage}' }
  { key: 'table', target: storageAccountId, group: 'table', zone: 'privatelink.table.${environment().suffixes.storage}' }
  { key: 'vault', target: keyVaultId, group: 'vault', zone: 'privatelink.vaultcore.azure.net' }
  { key: 'postgres', target: postgresServerId, group: 'postgresqlServer', zone: 'privatelink.postgres.database.azure.com' }
  { key: 'feed', target: feedTopicId, group: 'topic', zone: 'privatelink.eventgrid.azure.net' }
]

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for endpoint in endpoints: {
  name: endpoint.zone
  location: 'global'
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (endpoint, i) in endpoints: {
  parent: zones[i]
  name: '${name}-vnet-link'
  location: 'global'
  properties: {
    registrationEnabled: false
    virtualNetwork: { id: vnet.id }
  }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [for endpoint in endpoints: {
  name: '${name}-pe-${endpoint.key}-${suffix}'
  location: location
  properties: {
    subnet: { id: vnet.properties.subnets[1].id }
    privateLinkServiceConnections: [
      {
        name: endpoint.key
        properties: { privateLinkServiceId: endpoint.target, groupIds: [endpoint.group] }
      }
    ]
  }
}]

// Registers each endpoint's address in its zone, so the service's usual host name resolves to it inside the VNet.
resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [for (endpoint, i) in endpoints: {
  parent: privateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      { name: endpoint.key, properties: { privateDnsZoneId: zones[i].id } }
    ]
  }
}]

output appSubnetId string = vnet.properties.subnets[0].id
output vnetName string = vnet.name
