# Builds the billing console, the balance widget and the GraphQL IDE (frontend/) into
# app/static/console/ when the build is missing or older than its sources (frontend/ and
# schema.graphql, from which the typed client in frontend/src/gql is generated). Sourced by
# serve and test after _env.sh (so in the repository root). Needs Node 20 and npm.
frontend_stamp="app/static/console/.built"
frontend_changed() {
  [ ! -f "$frontend_stamp" ] && return 0
  [ schema.graphql -nt "$frontend_stamp" ] && return 0
  [ -n "$(find frontend -path frontend/node_modules -prune -o -path frontend/src/gql -prune -o -type f -newer "$frontend_stamp" -print -quit)" ]
}
if frontend_changed; then
  command -v npm >/dev/null || { echo "FATAL: npm (Node 20) is needed to build the console" >&2; exit 1; }
  echo "==> building the console (frontend/ -> app/static/console/)"
  (
    cd frontend
    # npm writes node_modules/.package-lock.json on install: older than the lock = stale.
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --no-audit --no-fund --loglevel=error
    fi
    npm run build --silent >/dev/null
  )
  touch "$frontend_stamp"
fi
