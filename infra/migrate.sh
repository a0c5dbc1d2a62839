#!/usr/bin/env bash
# Migrations and onboarding with the owner DSN, from the deployer's machine (deploy.sh and `azd up` run it after
# provisioning): `eventstore migrate` (the registry and every tenant's schema), `eventstore tenant onboard` for
# each tenant in ONBOARD_TENANTS, `eventstore partitions`. The owner DSN is built here from the environment and
# handed to the CLI in its environment only (never on a command line, never to the app with databaseLogin=entra).
#   POSTGRES_HOST=<server> POSTGRES_PASSWORD=... infra/migrate.sh
# Environment: POSTGRES_HOST and POSTGRES_PASSWORD (required); POSTGRES_ADMIN_LOGIN (default eventstoreadmin);
# POSTGRES_DATABASE (default eventstore); POSTGRES_PORT (default 5432: the server itself, not its PgBouncer);
# ONBOARD_TENANTS (tenant ids, separated by spaces or commas);
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
for tenant in ${tenants//,/ }; do
  run tenant onboard "$tenant"
done
run partitions
echo "migrated the registry and every tenant on $POSTGRES_HOST${tenants:+; onboarded $tenants}"
