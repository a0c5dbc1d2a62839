#!/usr/bin/env bash
# Migrations and onboarding with the owner DSN, from the deployer's machine (deploy.sh and `azd up` run it after
# provisioning): `eventstore migrate` (the registry and every tenant's schema), `eventstore tenant onboard` for
# each tenant in ONBOARD_TENANTS, `eventstore partitions`. The owner DSN is built here from the environment and
# handed to the CLI in its environment only (never on a command line, never to the app with databaseLogin=entra).
#   POSTGRES_HOST=<server> POSTGRES_PASSWORD=... infra/migrate.sh
# Environment: POSTGRES_HOST and POSTGRES_PASSWORD (required); POSTGRES_ADMIN_LOGIN (default eventstoreadmin);
# POSTGRES_DATABASE (default eventstore); POSTGRES_PORT (default 5432: the server itself, not its PgBouncer);
# ONBOARD_TENANTS (tenant ids, separated by spaces or commas); APP_LOGIN (the app's own database login, granted the
# application roles; with APP_PRINCIPAL_ID and ENTRA_ADMIN it is first created as the Entra administrator);
# EVENTSTORE_CLI (default: the project's .venv/bin/eventstore, else `eventstore` on PATH).
# This machine must reach the server: its address in the firewall (deploy.sh: DEPLOYER_IP), or, with private
# networking, a machine inside the VNet.
set -euo pipefail
: "${POSTGRES_HOST:?set POSTGRES_HOST}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${EVENTSTORE_CLI:-}
if [[ -z "$cli" ]]; then
  if [[ -x "$root/.venv/bin/eventstore" ]]; then cli="$root/.venv/bin/eventstore"; else cli=eventstore; fi
fi

owner_dsn=$(python3 - <<'PY'
import os
from urllib.parse import quote

login = os.environ.get("POSTGRES_ADMIN_LOGIN") or "eventstoreadmin"
database = os.environ.get("POSTGRES_DATABASE") or "eventstore"
port = os.environ.get("POSTGRES_PORT") or "5432"
password = quote(os.environ["POSTGRES_PASSWORD"], safe="")
host = quote(os.environ["POSTGRES_HOST"], safe="")  # a host name as it is; a socket directory (tests) encoded
print(f"postgresql://{quote(login, safe='')}:{password}@{host}:{port}/{quote(database, safe='')}?sslmode=require")
PY
)

# An empty EVENTSTORE_DATABASE_URL would make the CLI start an embedded PostgreSQL: it is always set here, and
# nothing else of the caller's eventstore settings is passed on.
run() {
  env -u EVENTSTORE_APP_DATABASE_URL EVENTSTORE_DATABASE_URL="$owner_dsn" "$cli" "$@"
}

tenants=${ONBOARD_TENANTS:-}
run migrate
# The app's own login (databaseLogin=entra): its managed identity's login, made by the Entra administrator with
# the deployer's token (never stored), then a member of the application roles, starting as eventstore_app.
if [[ -n "${APP_LOGIN:-}" ]]; then
  if [[ -n "${APP_PRINCIPAL_ID:-}" && -n "${ENTRA_ADMIN:-}" ]]; then
    token=$(az account get-access-token --resource-type oss-rdbms --query accessToken --output tsv)
    admin_dsn=$(ENTRA_ADMIN=$ENTRA_ADMIN python3 - <<'PY'
import os
from urllib.parse import quote

port = os.environ.get("POSTGRES_PORT") or "5432"
print(f"postgresql://{quote(os.environ['ENTRA_ADMIN'], safe='')}@{quote(os.environ['POSTGRES_HOST'], safe='')}:{port}/postgres?sslmode=require")
PY
)
    env -u EVENTSTORE_APP_DATABASE_URL PGPASSWORD="$token" EVENTSTORE_DATABASE_URL="$admin_dsn" \
      "$cli" entra-principal "$APP_LOGIN" "$APP_PRINCIPAL_ID"
  fi
  # Without an Entra administrator the login may not exist yet: deploy.sh prints how to make it and grant it.
  run grant-login "$APP_LOGIN" || echo "grant-login $APP_LOGIN failed: make the login first, then run it again" >&2
fi
for tenant in ${tenants//,/ }; do
  run tenant onboard "$tenant"
done
run partitions
echo "migrated the registry and every tenant on $POSTGRES_HOST${tenants:+; onboarded $tenants}"
