#!/usr/bin/env bash
# Fails when the code gqlgen generates for the articles example is out of
# date with its schema.graphqls or gqlgen.yml, like scripts/check-generated.sh
# does for Herald's. It regenerates in place, so after a failure the fresh
# code is in the working tree, ready to review and commit. gqlgen.yml sets
# skip_mod_tidy, so go.mod and go.sum are left alone.
set -euo pipefail
cd "$(dirname "$0")"
files=(graph/generated.go graph/model/models_gen.go)
before="$(cat "${files[@]}" | sha256sum)"
go tool gqlgen generate --config gqlgen.yml
after="$(cat "${files[@]}" | sha256sum)"
if [ "$before" != "$after" ]; then
	echo "examples/articles: generated gqlgen code was stale; it has been regenerated: review and commit ${files[*]} in examples/articles" >&2
	git --no-pager diff --stat -- "${files[@]}" >&2 || true
	exit 1
fi
echo "examples/articles: generated gqlgen code is up to date"
