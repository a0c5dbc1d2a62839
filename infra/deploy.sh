#!/usr/bin/env bash
# Deploys eventstore to a resource group with the az CLI:
#   POSTGRES_PASSWORD=... infra/deploy.sh <resource-group> <name> [location] [param=value ...]
# Further main.bicep parameters go after the location (alertEmailTo=ops@example.com smtpHost=...
# privateNetworking=true monitorAlertEmail=ops@example.com databaseLogin=entra). The secrets come from the
# environment, never the command line (where `ps` would show them): POSTGRES_PASSWORD, and for the alert
# channels, each optional (unset: that channel stays off) PAGERDUTY_ROUTING_KEY, SLACK_WEBHOOK_URL,
# SMTP_PASSWORD, ACS_EMAIL_CONNECTION_STRING; CONTINUATION_KEY keeps the token key across deployments;
# ARCHIVE_KEY (32 bytes, base64: `python3 -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"`)
# ARCHIVE_PREVIOUS_KEYS (a rotation: the keys ARCHIVE_KEY replaced, comma-separated, until re-wrapped)
# turns retention on; give the same one every time (a new one cannot read what the old one archived);
# CONSOLE_AUTH_CLIENT_SECRET is the console's app registration secret. The template puts them in the Key Vault
# and gives the app Key Vault references. CONSOLE_AUTH_CLIENT_ID (and CONSOLE_AUTH_TENANT_ID, default the
# subscription's tenant), not secret, put the operator console behind Entra ID sign-in; unset, the console is off.
# PostgreSQL's Microsoft Entra administrator is the signed-in az user (POSTGRES_ENTRA_ADMIN_OBJECT_ID and
# POSTGRES_ENTRA_ADMIN_NAME, with POSTGRES_ENTRA_ADMIN_TYPE User|Group|ServicePrincipal, name another); it creates
# the app identity's database login (docs/azure.md). DEPLOYER_IP lets this machine through the server's firewall.
# Migrations and onboarding run from here with the owner DSN (infra/migrate.sh) when MIGRATE=1 or ONBOARD_TENANTS
# is set, and always with databaseLogin=entra (the app then has no owner DSN to do it with); otherwise run
# `eventstore tenant onboard <tenantId>` yourself with EVENTSTORE_DATABASE_URL pointing at the new server.
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
plain=()
if [[ -n "${CONSOLE_AUTH_CLIENT_ID:-}" ]]; then plain+=("consoleAuthClientId=$CONSOLE_AUTH_CLIENT_ID"); fi
if [[ -n "${CONSOLE_AUTH_TENANT_ID:-}" ]]; then plain+=("consoleAuthTenantId=$CONSOLE_AUTH_TENANT_ID"); fi
if [[ -n "${DEPLOYER_IP:-}" ]]; then plain+=("deployerIpAddress=$DEPLOYER_IP"); fi

# The Entra administrator: as given, else the signed-in user (nothing when az cannot tell, e.g. a service
# principal's login: then give POSTGRES_ENTRA_ADMIN_* yourself).
admin_id=${POSTGRES_ENTRA_ADMIN_OBJECT_ID:-}; admin_name=${POSTGRES_ENTRA_ADMIN_NAME:-}
if [[ -z "$admin_id" || -z "$admin_name" ]]; then
  signed_in=$(az ad signed-in-user show --query '{id: id, name: userPrincipalName}' --output json 2>/dev/null || true)
  admin_id=$(echo "$signed_in" | python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t)["id"] if t else "")')
  admin_name=$(echo "$signed_in" | python3 -c 'import json,sys; t=sys.stdin.read().strip(); print(json.loads(t)["name"] if t else "")')
fi
if [[ -n "$admin_id" && -n "$admin_name" ]]; then
  plain+=("postgresEntraAdminObjectId=$admin_id" "postgresEntraAdminName=$admin_name")
  plain+=("postgresEntraAdminType=${POSTGRES_ENTRA_ADMIN_TYPE:-User}")
fi

az group create --name "$group" --location "$location" --output none
outputs=$(az deployment group create --resource-group "$group" --template-file "$here/main.bicep" \
  --parameters "@$secrets/parameters.json" name="$name" ${plain[@]+"${plain[@]}"} ${extra[@]+"${extra[@]}"} \
  --query properties.outputs --output json)
app=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["functionAppName"]["value"])')
host=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["postgresHost"]["value"])')
vault=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["keyVaultName"]["value"])')
redirect=$(echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)["consoleSignInRedirectUri"]["value"])')
output() { echo "$outputs" | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]]["value"])' "$1"; }
principal=$(output functionAppPrincipalId)
login=$(output databaseLogin)

# Before the code: with databaseLogin=entra the app cannot migrate anything itself.
# With it, migrate.sh also makes the identity's login (as the Entra administrator, when known) and grants it the
# application role (as the owner).
if [[ "${MIGRATE:-}" == 1 || -n "${ONBOARD_TENANTS:-}" || "$login" == entra ]]; then
  identity=()
  if [[ "$login" == entra ]]; then
    identity=(APP_LOGIN="$app" APP_PRINCIPAL_ID="$principal" ENTRA_ADMIN="$admin_name")
  fi
  env ${identity[@]+"${identity[@]}"} POSTGRES_HOST="$host" POSTGRES_ADMIN_LOGIN="$(output postgresAdminLogin)" \
    POSTGRES_DATABASE="$(output databaseName)" "$here/migrate.sh"
fi

# Package the app as the Functions host expects it (remote build installs requirements.txt).
package=$(mktemp -d)/app.zip
"$here/package.sh" "$package"
az functionapp deployment source config-zip --resource-group "$group" --name "$app" --src "$package" --build-remote true
# The deployment restarted the app, minutes after its identity got the vault role: the references resolve now.
echo "deployed $app; database host $host; secrets in Key Vault $vault"
echo "console sign-in redirect URI (register it on the console's app registration): $redirect"
if [[ "$login" == entra && -z "$admin_name" ]]; then
  # No Entra administrator was known to make the identity's login: the SQL to run by hand.
  cat <<SQL
The app logs in to PostgreSQL as its managed identity. Once, as the server's Entra administrator in the
postgres database (password: az account get-access-token --resource-type oss-rdbms --query accessToken -o tsv):
  SELECT * FROM pgaadauth_create_principal_with_oid('$app', '$principal', 'service', false, false);
then, with the owner DSN: eventstore grant-login '$app'
(docs/azure.md, "PostgreSQL")
SQL
fi
