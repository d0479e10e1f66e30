#!/bin/sh
# Re-fetches the vendored GraphiQL page assets from the npm registry at the
# versions pinned below and rewrites VERSIONS with their SHA-256 sums.
#
# Herald embeds these files so that GraphiQL works offline and under a
# strict Content-Security-Policy; nothing fetches them at build or test
# time. Run this by hand (needs npm, tar, sha256sum) after changing a
# version, then review the diff, run `go test ./server/graphiql/` and load
# the page in a browser: the tests check the files are served and listed,
# not that the versions work together.
#
# Why these versions: the page loads plain <script> files, so it needs UMD
# builds. GraphiQL 3.x ships a supported UMD build (4.x deprecates it, 5.x
# has none) that takes React and ReactDOM as globals and supports React 18;
# React 18 is the last React with UMD builds. GraphiQL's bundle already
# contains the graphql-ws client, so no separate file is needed for it.
set -eu

GRAPHIQL_VERSION=3.9.0
REACT_VERSION=18.3.1

cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# vendor PACKAGE VERSION FILE...: copies each FILE (a path inside the
# package) and the package's LICENSE into ./PACKAGE/ and records the files.
vendor() {
	pkg=$1 version=$2
	shift 2
	(cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
	mkdir -p "$tmp/$pkg" "$pkg"
	tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp/$pkg"
	cp "$tmp/$pkg/package/LICENSE" "$pkg/LICENSE"
	for file in "$@"; do
		name=$(basename "$file")
		cp "$tmp/$pkg/package/$file" "$pkg/$name"
		sum=$(sha256sum "$pkg/$name" | cut -d' ' -f1)
		printf '%s %s %s %s\n' "$pkg/$name" "$pkg" "$version" "$sum" >>"$tmp/VERSIONS"
	done
}

printf '# file package version sha256 (written by update.sh; see README.md)\n' >"$tmp/VERSIONS"
vendor graphiql "$GRAPHIQL_VERSION" graphiql.min.js graphiql.min.css
vendor react "$REACT_VERSION" umd/react.production.min.js
vendor react-dom "$REACT_VERSION" umd/react-dom.production.min.js
cp "$tmp/VERSIONS" VERSIONS
cat VERSIONS
