#!/usr/bin/env bash
# Run the public HTTP cache test suite (cache-tests.fyi, npm package `http-cache-tests`)
# through `edgeproxy serve` on loopback, and print pass/fail counts per test kind.
#
# Usage:
#   bench/conformance.sh                 # suite origin <- edgeproxy serve <- suite client
#   bench/conformance.sh --direct        # no proxy: the client talks to the suite origin (baseline)
#   bench/conformance.sh --id TEST-ID    # one test, with request/response dumps (for debugging)
# Environment:
#   EDGEPROXY_SERVE_ARGS   extra arguments for `edgeproxy serve` (e.g. "--redis redis://127.0.0.1:6379/0")
#   CONFORMANCE_TIMEOUT    seconds the whole suite may take (default 300)
#
# Writes the raw results (test id -> true | [error, message]) to bench/results/conformance.json.
# Needs node >= 14.8 and npm; installs the pinned suite into bench/conformance/node_modules.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/bench/conformance"
SUITE="$HERE/node_modules/http-cache-tests"
RESULTS="$ROOT/bench/results/conformance.json"
EDGEPROXY="${EDGEPROXY:-$ROOT/.venv/bin/edgeproxy}"
TIMEOUT="${CONFORMANCE_TIMEOUT:-300}"

mode=proxy
test_id=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --direct) mode=direct; shift ;;
    --id) test_id="${2:?--id needs a test id}"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "conformance.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

command -v node >/dev/null || { echo "conformance.sh: node not found (apt-get install nodejs npm)" >&2; exit 2; }
if [[ ! -d "$SUITE" ]]; then
  echo "installing http-cache-tests into $HERE/node_modules ..." >&2
  (cd "$HERE" && npm ci --no-audit --no-fund --silent)
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait until something accepts connections on 127.0.0.1:$1, or the process $2 dies.
wait_listening() {
  local port="$1" pid="$2" deadline=$((SECONDS + 20))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "conformance.sh: process $pid exited before listening on $port" >&2; return 1; }
    (( SECONDS < deadline )) || { echo "conformance.sh: nothing listening on 127.0.0.1:$port after 20 s" >&2; return 1; }
    sleep 0.1
  done
}

LOGS="$(mktemp -d -t edgeproxy-conformance.XXXXXX)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

origin_port="$(free_port)"
(cd "$HERE" && exec timeout "$((TIMEOUT + 60))" node server.mjs "$origin_port") >"$LOGS/origin.log" 2>&1 &
pids+=($!)
wait_listening "$origin_port" "${pids[-1]}" || { cat "$LOGS/origin.log" >&2; exit 1; }
base="http://127.0.0.1:$origin_port"

if [[ "$mode" == proxy ]]; then
  [[ -x "$EDGEPROXY" ]] || { echo "conformance.sh: $EDGEPROXY not found (make test creates .venv)" >&2; exit 2; }
  proxy_port="$(free_port)"
  # shellcheck disable=SC2086  # EDGEPROXY_SERVE_ARGS is a list of words on purpose
  timeout "$((TIMEOUT + 60))" "$EDGEPROXY" serve --origin "$base" --listen "127.0.0.1:$proxy_port" \
    ${EDGEPROXY_SERVE_ARGS:-} >"$LOGS/proxy.log" 2>&1 &
  pids+=($!)
  wait_listening "$proxy_port" "${pids[-1]}" || { tail -50 "$LOGS/proxy.log" >&2; exit 1; }
  base="http://127.0.0.1:$proxy_port"
fi

echo "suite http-cache-tests@$(node -p "require('$SUITE/package.json').version") -> $base ($mode; logs in $LOGS)" >&2
run_client() {
  # cli.mjs reads its options as npm config variables; set them as `npm run cli --base=...` would.
  (cd "$SUITE" && npm_config_base="$base" npm_package_config_id="$test_id" \
    timeout "$TIMEOUT" node --no-warnings cli.mjs)
}

if [[ -n "$test_id" ]]; then
  run_client
  exit 0
fi

mkdir -p "$(dirname "$RESULTS")"
run_client >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
(cd "$HERE" && node summarize.mjs "$RESULTS")
echo "raw results: $RESULTS" >&2
