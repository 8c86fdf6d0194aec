#!/usr/bin/env bash
# Runs the whole test suite with the race detector. Tests only ever talk to
# 127.0.0.1; where we run as root and can create a network namespace, the
# suite runs inside one with nothing but loopback, so nothing can leave the
# machine even by mistake.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
# The race detector needs cgo (gcc is on the machine; the release binary is
# still built without it).
export CGO_ENABLED=1
# make test installed the pinned CLIs (make clis) before calling this: a test
# that finds them (or node) missing fails instead of skipping.
export CODEMACHINE_REQUIRE_CLIS=1
# Compile everything first, outside the namespace: the module proxy may be
# needed for that.
# The build tags of make build (the tests run the binary's code as built).
TAGS=urfave_cli_no_docs
$GO test -race -tags "$TAGS" -count=1 -run '^$' ./... >/dev/null
# nektos/act, which the tests of init --ci github run the generated
# workflow with, is built from the module proxy into the test cache: here,
# where the proxy is reachable (about a minute, once per machine).
$GO run ./internal/testenv/cmd/install-clis -q -act

# go test's -timeout only catches a hung test: each test awaits its own
# events and gives up after testenv.Patience. Loaded machines run the CLI
# package's scenarios (real agent CLIs, tmux) several times slower, so the
# guard is generous and stretches with the suite's one setting,
# CODEMACHINE_TEST_SCALE, like every other limit.
timeout=$(awk -v s="${CODEMACHINE_TEST_SCALE:-1}" 'BEGIN { if (s + 0 <= 0) s = 1; printf "%ds", 3600 * s }')
args=(test -race -tags "$TAGS" -count=1 -timeout "$timeout" ./...)
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null && unshare --net true 2>/dev/null; then
	echo "test: running under unshare --net (loopback only)"
	exec unshare --net sh -c 'ip link set lo up && exec "$@"' sh env GOPROXY=off "$GO" "${args[@]}"
fi
echo "test: not isolated in a network namespace (not root, or no unshare/ip); tests still talk only to 127.0.0.1"
exec "$GO" "${args[@]}"
