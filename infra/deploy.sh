#!/usr/bin/env bash
# Deploys eventstore to a resource group with the az CLI:
#   POSTGRES_PASSWORD=... infra/deploy.sh <resource-group> <name> [location]
# Then onboards nothing by itself: run `eventstore tenant onboard <tenantId>` with EVENTSTORE_DATABASE_URL
# pointing at the new server (printed at the end), or use the tenant API once it lands.
set -euo pipefail
group=${1:?resource group}; name=${2:?short name}; location=${3:-westeurope}
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
here=$(cd "$(dirname "$0")" && pwd)

az group create --name "$group" --location "$location" --output none
outputs=$(az deployment group create --resource-group "$group" --template-file "$here/main.bicep" \
  --parameters name="$name" postgresAdminPassword="$POSTGRES_PASSWORD" --query properties.outputs --output json)
app=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["functionAppName"]["value"])')
host=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["postgresHost"]["value"])')

# Package the app as the Functions host expects it (remote build installs requirements.txt).
package=$(mktemp -d)/app.zip
"$here/package.sh" "$package"
az functionapp deployment source config-zip --resource-group "$group" --name "$app" --src "$package" --build-remote true
echo "deployed $app; database host $host"
