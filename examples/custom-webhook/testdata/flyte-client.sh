#!/usr/bin/env bash
# Runs the Flyte tutorial's client (flyte_client.py) unchanged against this
# example built and started as a process on a free loopback port, with
# Debian's python3-httpx (installed when missing). `make flyte-client`.
set -euo pipefail
cd "$(dirname "$0")/../../.."

py=/usr/bin/python3 # Debian's, where python3-httpx installs; not a pyenv one
if ! "$py" -c 'import httpx' 2>/dev/null; then
	apt-get install -y python3-httpx >/dev/null 2>&1 ||
		{ apt-get update >/dev/null && apt-get install -y python3-httpx >/dev/null; }
fi

tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/custom-webhook" ./examples/custom-webhook
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=flyte-client-token-0123456789abcdef
TASKGATE_ADDR=127.0.0.1:$port TASKGATE_DATA_DIR=$tmp/data TASKGATE_METRICS_ADDR= \
	TASKGATE_AUTH_TOKENS="$token=alice" TASKGATE_NODE_GPUS=A100:1 \
	"$tmp/custom-webhook" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	"$py" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
	sleep 0.1
done

out=$(FLYTE_API_KEY=$token WEBHOOK_ENDPOINT=http://127.0.0.1:$port/webhook \
	"$py" examples/custom-webhook/testdata/flyte_client.py) || { cat "$tmp/server.log" >&2; exit 1; }
echo "$out"
grep -qx 'Authenticated as: alice' <<<"$out"
run=$(sed -n 's|^Task launched: .*/run/\([a-z0-9]*\)$|\1|p' <<<"$out")
[ -n "$run" ] || { echo "no run in the client's output" >&2; exit 1; }
# The run it started belongs to the caller and succeeds.
for _ in $(seq 100); do
	body=$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/webhook/run/$run") || true
	grep -q '"phase":"succeeded"' <<<"$body" && { echo "run $run succeeded"; exit 0; }
	sleep 0.1
done
echo "run $run did not succeed: $body" >&2
exit 1
