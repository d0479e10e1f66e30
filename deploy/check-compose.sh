#!/usr/bin/env bash
# Checks deploy/compose.yaml and nginx's include files without Docker (there
# is no Docker engine where `make test` runs). Bounded, loopback only; it
# builds into and removes its own temporary directory.
#
# Verified here (deploy/internal/composecheck):
#   - compose.yaml parses as YAML; every service key is one the checker knows
#     (a misspelt key fails);
#   - services nats1..3, herald1..3 and nginx exist; the NATS image's version
#     is go.mod's nats-server version; each NATS node has --name, JetStream,
#     one common --cluster_name, routes to the other two, a declared volume at
#     its --store_dir and a healthcheck on its monitoring port;
#   - nats-server (go.mod's version) accepts each NATS command's flags;
#   - each Herald replica is built from the repository's Dockerfile, lists
#     all three NATS nodes in --nats-url with --stream-replicas 3, and this
#     tree's herald accepts the whole command (run with NATS pointed at a
#     closed loopback port, it gets past configuration to dialling NATS);
#   - stop_grace_period covers the README's bound on a stop: drain-timeout
#     + 2 x shutdown-timeout + 15s, and the second herald allows past it
#     (the service's values, else herald's defaults);
#   - ${VAR:-default} and ${VAR:?message} in an environment are interpolated as
#     Compose does with VAR unset (a stand-in value for a required one);
#   - the Herald healthcheck command passes against a ready local Herald and
#     fails with none listening (it runs the same binary as /herald);
#   - nginx mounts nginx.conf, upstreams.conf and listen.conf side by side;
#     listen.conf's port is the published one; upstreams.conf names exactly
#     the Herald services on the port each listens on.
# Not verified here:
#   - the Compose specification as a whole (`docker compose config` does);
#   - that the images exist and the Dockerfile builds, that containers start,
#     that Docker's DNS resolves the service names, that the volumes persist;
#   - nginx's `resolve` parameter and upstream-level `resolver` in
#     upstreams.conf: they need nginx 1.27.3 or later and Debian's is 1.22.
#     The cluster test (go run ./deploy/cluster-test) runs the same nginx.conf
#     with those two removed, and the same topology as real processes.
set -euo pipefail
deploy="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$deploy")"
GO="${GO:-go}"
work="$(mktemp -d "${TMPDIR:-/tmp}/herald-compose-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "check-compose: building herald, nats-server (go.mod's version) and the checker"
timeout 300 "$GO" build -C "$root" -o "$work/" ./cmd/herald github.com/nats-io/nats-server/v2 ./deploy/internal/composecheck
timeout 120 "$work/composecheck" -deploy "$deploy" -herald "$work/herald" -nats "$work/nats-server" -gomod "$root/go.mod"
