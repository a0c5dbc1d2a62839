#!/usr/bin/env bash
# azd's postprovision hook (azure.yaml): the same migrations and onboarding as deploy.sh, from this machine with
# the owner DSN, when MIGRATE=1 or ONBOARD_TENANTS is set in the azd environment, and always with
# databaseLogin=entra. azd hands the template's outputs over as upper-cased variables (POSTGRESHOST...) and
# the azd environment's own values (POSTGRES_PASSWORD) as they are.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ "${MIGRATE:-}" == 1 || -n "${ONBOARD_TENANTS:-}" || "${DATABASELOGIN:-}" == entra ]]; then
  identity=()
  if [[ "${DATABASELOGIN:-}" == entra ]]; then
    # The identity's login, made as the Entra administrator (the signed-in azd user) and granted as the owner.
    identity=(APP_LOGIN="${FUNCTIONAPPNAME:?no functionAppName output}" APP_PRINCIPAL_ID="${FUNCTIONAPPPRINCIPALID:-}"
              ENTRA_ADMIN="${POSTGRES_ENTRA_ADMIN_NAME:-}")
  fi
  env ${identity[@]+"${identity[@]}"} POSTGRES_HOST="${POSTGRESHOST:?no postgresHost output}" \
    POSTGRES_ADMIN_LOGIN="${POSTGRESADMINLOGIN:-}" POSTGRES_DATABASE="${DATABASENAME:-}" "$here/migrate.sh"
else
  echo "migrations not run (MIGRATE=1 runs them; the app migrates on first use with databaseLogin=owner)"
fi
