#!/usr/bin/env bash
# Fails when the code gqlgen generates is out of date with schema.graphqls
# or gqlgen.yml. It regenerates in place, so after a failure the fresh code
# is in the working tree, ready to review and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
files=(graph/generated.go graph/model/models_gen.go)
before="$(cat "${files[@]}" | sha256sum)"
go tool gqlgen generate
after="$(cat "${files[@]}" | sha256sum)"
if [ "$before" != "$after" ]; then
	echo "generated gqlgen code was stale; it has been regenerated: review and commit ${files[*]}" >&2
	git --no-pager diff --stat -- "${files[@]}" >&2 || true
	exit 1
fi
echo "generated gqlgen code is up to date"
