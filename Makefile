# Herald's one test command is `make test`; CI runs it through .ci/run.
GO ?= go

.PHONY: test fmt-check vet staticcheck generate-check unit unit-norace fuzz smoke e2e nextjs-e2e client-js compose-check cluster-test bench build run generate

test: fmt-check vet staticcheck generate-check unit unit-norace fuzz smoke e2e nextjs-e2e compose-check cluster-test client-js

# gofmt must have nothing to say about any Go file.
fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck (a tool pinned in go.mod): unused code, deprecated calls and
# the bugs go vet does not look for.
staticcheck:
	$(GO) tool staticcheck ./...

# The generated gqlgen code must match schema.graphqls and gqlgen.yml (and
# those of the benchmark peer, under bench/peer, and of the articles example).
generate-check:
	@scripts/check-generated.sh
	@bench/peer/check-generated.sh
	@examples/articles/check-generated.sh

unit:
	$(GO) test -race -count=1 ./...

# Tests that measure goroutine stacks, which the race detector enlarges.
unit-norace:
	$(GO) test -count=1 -run 'TestIdleSocketStack|TestIdleStreamCost' ./server

# Each fuzz target (both WebSocket decoders and the socket's protocol, the
# HTTP request decoders, Accept negotiation, lone surrogate escapes, the
# origin policy, the number readers of variables, stream tokens, the cursor
# decoder, the event decoder and encoder, bearer tokens and display names) briefly,
# from its committed seed corpus; FUZZTIME=1m for longer.
fuzz:
	@scripts/fuzz.sh

# `go run ./cmd/herald` must work on a fresh machine with no set-up.
smoke:
	@scripts/smoke.sh

# Real clients we did not write (graphql-ws, subscriptions-transport-ws,
# Apollo Client, GraphiQL in Chromium) against two Herald processes; needs
# Node.js, npm and Debian's chromium. The driver is Go (e2e/main.go).
e2e:
	@GO=$(GO) $(GO) run ./e2e

# @heraldhq/client (clients/js): its build and its tests against real Herald
# processes (resume after a drop and a restart, token refresh, the hand-over
# from a rendered page); needs Node.js 20+ and npm.
client-js:
	@GO=$(GO) clients/js/run-tests.sh

# The Next.js example app (examples/nextjs-chat) in Debian's Chromium, driven
# by playwright-core, against two Herald replicas behind nginx running
# deploy/nginx.conf: two users chatting, the hand-over from the server render
# to the subscription, the SSE fallback, --auth jwt and a replica killed.
# Needs Node.js 20.9+, npm, nginx and chromium.
nextjs-e2e:
	@GO=$(GO) examples/nextjs-chat/e2e/run.sh

# deploy/compose.yaml and nginx's include files, checked without Docker.
compose-check:
	@GO=$(GO) deploy/check-compose.sh

# The compose topology (3 NATS nodes, 3 replicas, nginx with deploy/nginx.conf)
# as real processes on loopback, killed and restarted under load; needs nginx.
# The driver is Go (deploy/cluster-test/main.go).
cluster-test:
	@GO=$(GO) $(GO) run ./deploy/cluster-test

# The side-by-side benchmarks (about 45 minutes; not part of make test): Herald (also over
# SSE), the baseline broadcaster, the stock-gqlgen peer and Centrifugo, written to
# docs/BENCHMARKS.md.
bench:
	@GO=$(GO) bench/run

generate:
	$(GO) tool gqlgen generate

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o bin/herald ./cmd/herald

run:
	$(GO) run ./cmd/herald
