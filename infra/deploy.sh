#!/usr/bin/env bash
# Deploys eventstore to a resource group with the az CLI:
#   POSTGRES_PASSWORD=... infra/deploy.sh <resource-group> <name> [location] [param=value ...]
# Further main.bicep parameters go after the location (alertEmailTo=ops@example.com smtpHost=...). The secrets
# come from the environment, never the command line (where `ps` would show them): POSTGRES_PASSWORD, and for
# the alert channels, each optional (unset: that channel stays off) PAGERDUTY_ROUTING_KEY, SLACK_WEBHOOK_URL,
# SMTP_PASSWORD, ACS_EMAIL_CONNECTION_STRING; CONTINUATION_KEY keeps the token key across deployments;
# ARCHIVE_KEY (32 bytes, base64: `python3 -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"`)
# ARCHIVE_PREVIOUS_KEYS (a rotation: the keys ARCHIVE_KEY replaced, comma-separated, until re-wrapped)
# turns retention on; give the same one every time (a new one cannot read what the old one archived);
# CONSOLE_AUTH_CLIENT_SECRET is the console's app registration secret. The template puts them in the Key Vault
# and gives the app Key Vault references. CONSOLE_AUTH_CLIENT_ID (and CONSOLE_AUTH_TENANT_ID, default the
# subscription's tenant), not secret, put the operator console behind Entra ID sign-in; unset, the console is off.
# Then onboards nothing by itself: run `eventstore tenant onboard <tenantId>` with EVENTSTORE_DATABASE_URL
# pointing at the new server (printed at the end), or use the tenant API once it lands.
set -euo pipefail
group=${1:?resource group}; name=${2:?short name}; location=${3:-westeurope}
extra=("${@:4}")
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
here=$(cd "$(dirname "$0")" && pwd)

# The secure parameters go in a file only this user may read, removed on exit.
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
chmod 700 "$secrets"
python3 - "$secrets/parameters.json" <<'PY'
import json
import os
import sys

names = {
    "postgresAdminPassword": "POSTGRES_PASSWORD",
    "continuationKey": "CONTINUATION_KEY",
    "pagerdutyRoutingKey": "PAGERDUTY_ROUTING_KEY",
    "slackWebhookUrl": "SLACK_WEBHOOK_URL",
    "smtpPassword": "SMTP_PASSWORD",
    "acsEmailConnectionString": "ACS_EMAIL_CONNECTION_STRING",
    "archiveKey": "ARCHIVE_KEY",
    "archivePreviousKeys": "ARCHIVE_PREVIOUS_KEYS",
    "consoleAuthClientSecret": "CONSOLE_AUTH_CLIENT_SECRET",
}
parameters = {p: {"value": os.environ[v]} for p, v in names.items() if os.environ.get(v)}
document = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
    "contentVersion": "1.0.0.0",
    "parameters": parameters,
}
with open(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
    json.dump(document, file)
PY

# Not secret, so on the command line; before the extra parameters, which win.
console=()
if [[ -n "${CONSOLE_AUTH_CLIENT_ID:-}" ]]; then console+=("consoleAuthClientId=$CONSOLE_AUTH_CLIENT_ID"); fi
if [[ -n "${CONSOLE_AUTH_TENANT_ID:-}" ]]; then console+=("consoleAuthTenantId=$CONSOLE_AUTH_TENANT_ID"); fi

az group create --name "$group" --location "$location" --output none
outputs=$(az deployment group create --resource-group "$group" --template-file "$here/main.bicep" \
  --parameters "@$secrets/parameters.json" name="$name" ${console[@]+"${console[@]}"} ${extra[@]+"${extra[@]}"} \
  --query properties.outputs --output json)
app=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["functionAppName"]["value"])')
host=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["postgresHost"]["value"])')
vault=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyVaultName"]["value"])')
redirect=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["consoleSignInRedirectUri"]["value"])')

# Package the app as the Functions host expects it (remote build installs requirements.txt).
package=$(mktemp -d)/app.zip
"$here/package.sh" "$package"
az functionapp deployment source config-zip --resource-group "$group" --name "$app" --src "$package" --build-remote true
# The deployment restarted the app, minutes after its identity got the vault role: the references resolve now.
echo "deployed $app; database host $host; secrets in Key Vault $vault"
echo "console sign-in redirect URI (register it on the console's app registration): $redirect"
