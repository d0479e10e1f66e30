#!/usr/bin/env bash
# Fuzzes each fuzz target briefly: FUZZTIME (default 5000x, a number of
# inputs; a duration such as 1m works too) per target, which
# includes replaying the seed corpus. Go fuzzes one target per `go test`
# run, so each target gets its own. Exits non-zero if any target fails;
# go test then leaves the failing input under
# <package>/testdata/fuzz/<FuzzName>/ (commit it with the fix, as a
# regression seed) and prints the command that replays it.
#
# The graph, chat and auth targets are cheap and run alongside the server ones, on one
# fuzzing worker, so that the whole run stays near 40s on two cores.
#
# The seed corpora (testdata/fuzz/ and the f.Add calls) also run as plain
# tests with `go test ./...`. Inputs found to add coverage are kept in the
# Go build cache (go env GOCACHE), so repeated runs start where the last
# ones stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

# A count rather than a duration by default: with a duration, go test can
# report "context deadline exceeded" as a failure when a worker is still
# busy as time runs out on a loaded machine, which would make CI flaky.
fuzztime="${FUZZTIME:-5000x}"
server_targets=(
	FuzzDecodeTransportWS # decodeClientMessage, graphql-transport-ws
	FuzzDecodeLegacyWS    # decodeClientMessage, graphql-ws (legacy)
	FuzzDecodeBody        # POST body
	FuzzReadQueryString   # GET query string
	FuzzExactInteger      # exactInteger (variables' numbers) against math/big
	FuzzWSReceive         # wsMachine.receive: frames sent, close reasons, legacy non-JSON
	FuzzAccept            # Accept negotiation against the q-value rules
	FuzzLoneSurrogate     # loneSurrogate against a walk of the JSON strings
	FuzzOrigin            # the origin policy admits only what it lists
	FuzzJudgeNumber       # Int, ID and Float judgements against math/big
	FuzzStreamToken       # graphql-sse single connection mode tokens
)
graph_targets=(
	FuzzCursorParse     # parseCursor on any string
	FuzzCursorRoundTrip # encodeCursor then parseCursor
)
chat_targets=(
	FuzzParseEventJSON # parseEventJSON against encoding/json
	FuzzEventRoundTrip # Encode then parseEventJSON
)
auth_targets=(
	FuzzBearerToken  # the token of an Authorization header
	FuzzSanitizeName # display names from tokens
)

# fuzz PKG WORKERS TARGET... fuzzes each target in turn and fails if any
# of them does, naming them.
fuzz() {
	local pkg=$1 workers=$2 name failed=()
	shift 2
	for name in "$@"; do
		echo "fuzz: $name ($pkg) for $fuzztime"
		if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel "$workers" "$pkg"; then
			failed+=("$name")
		fi
	done
	if [ "${#failed[@]}" -gt 0 ]; then
		echo "fuzz: FAILED: ${failed[*]} (inputs under $pkg/testdata/fuzz/; see above)"
		return 1
	fi
}

start=$SECONDS
log="$(mktemp)"
set -m # the background job gets its own process group, to stop it whole
{
	cheap=0
	fuzz ./graph 1 "${graph_targets[@]}" || cheap=1
	fuzz ./chat 1 "${chat_targets[@]}" || cheap=1
	fuzz ./auth 1 "${auth_targets[@]}" || cheap=1
	exit "$cheap"
} >"$log" 2>&1 &
graph=$!
set +m
cleanup() {
	kill -- -"$graph" 2>/dev/null || true
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
fuzz ./server "$(nproc 2>/dev/null || echo 2)" "${server_targets[@]}" || status=1
wait "$graph" || status=1
cat "$log"

if [ "$status" -ne 0 ]; then
	echo "fuzz: some targets failed; see above" >&2
	exit 1
fi
echo "fuzz: $((${#server_targets[@]} + ${#graph_targets[@]} + ${#chat_targets[@]} + ${#auth_targets[@]})) targets passed in $((SECONDS - start))s"
