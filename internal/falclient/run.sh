#!/usr/bin/env bash
# Runs fal's own JS client (@fal-ai/client, pinned in package.json and
# package-lock.json), unmodified, against examples/fal-queue built and
# started as a process on a free loopback port: check.mjs configures it
# with fal's proxy option and drives submit, status, streamed status,
# result, subscribe, cancel and its errors. `make fal-client`.
set -euo pipefail
cd "$(dirname "$0")"
dir=$PWD
cd ../..

for tool in node npm; do
	command -v "$tool" >/dev/null ||
		{ echo "fal-client: $tool is missing: install Node.js 18 or newer (https://nodejs.org)" >&2; exit 1; }
done
# npm ci only when the lock changed since the last install (the stamp is
# the lock it installed): a warm run stays offline.
stamp=$dir/node_modules/.installed-lock.json
if ! cmp -s "$dir/package-lock.json" "$stamp"; then
	npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
	cp "$dir/package-lock.json" "$stamp"
fi

tmp=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$tmp"' EXIT
go build -o "$tmp/fal-queue" ./examples/fal-queue
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
token=fal-client-token-0123456789abcdef
TASKGATE_ADDR=127.0.0.1:$port TASKGATE_DATA_DIR=$tmp/data TASKGATE_METRICS_ADDR= \
	TASKGATE_AUTH_TOKENS="$token=alice" \
	"$tmp/fal-queue" >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
	sleep 0.1
done

FAL_PROXY_URL=http://127.0.0.1:$port/gen/fal FAL_KEY=$token FAL_SUBJECT=alice \
	timeout 60 node "$dir/check.mjs" || { echo "server log:" >&2; cat "$tmp/server.log" >&2; exit 1; }
