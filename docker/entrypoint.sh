#!/bin/sh
# bcconnect container entrypoint: wait for the store and migrate it, make sure the local token issuer exists
# (demo wiring), then run the command — `bcconnect …` is given the container's configuration file.
#
# Environment: BCCONNECT_CONFIG (configuration file), BCCONNECT_DATA_DIR (keys, demo token),
# BCCONNECT_WAIT_SECONDS (how long to wait for the store, default 60), BCCONNECT_DEMO_TOKEN (1: write a
# demo bearer token to $BCCONNECT_DATA_DIR/demo-token.txt), and any BCCONNECT_<SECTION>_<KEY> override.
set -eu

config="${BCCONNECT_CONFIG:-/etc/bcconnect/bcconnect.toml}"
data="${BCCONNECT_DATA_DIR:-/data}"
wait_seconds="${BCCONNECT_WAIT_SECONDS:-60}"

if [ "$#" -eq 0 ]; then
  set -- bcconnect run --with-api
fi
mkdir -p "$data"

# 1. The store. PostgreSQL may still be starting: `db upgrade` both checks it answers and applies migrations
#    (several engine containers may race here; migrations take an advisory lock, so that is safe).
deadline=$(( $(date +%s) + wait_seconds ))
until bcconnect --config "$config" db upgrade >/dev/null 2>"$data/.db-upgrade.err"; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "bcconnect-entrypoint: the store did not become ready within ${wait_seconds}s: $(tail -n 1 "$data/.db-upgrade.err")" >&2
    exit 1
  fi
  sleep 1
done
rm -f "$data/.db-upgrade.err"

# 2. The local token issuer (its key and JWKS under $data/security) and a demo token, for the demo wiring.
if [ "${BCCONNECT_DEMO_TOKEN:-1}" = "1" ]; then
  bcconnect --config "$config" token issue --scope "user/*.rs" --user 555123456789 --org RL4 \
    --data-dir "$data" > "$data/demo-token.txt"
fi

# 3. Run it: the process replaces this shell, so it receives the container's signals.
if [ "$1" = "bcconnect" ]; then
  shift
  exec bcconnect --config "$config" "$@"
fi
exec "$@"
