# syntax=docker/dockerfile:1
# Multi-stage build: a static Herald binary on a distroless base, run as a
# non-root user, with the embedded NATS data in a volume.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/herald ./cmd/herald \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /herald
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV HERALD_DATA_DIR=/data
# A container usually faces a network: it runs with JWT authentication and
# refuses to start until a key is configured (HERALD_JWT_SECRET, or
# HERALD_JWKS_URL / HERALD_JWKS_FILE). Development mode, which trusts
# whatever user a client names, must be asked for: HERALD_AUTH=dev.
ENV HERALD_AUTH=jwt
# Every interface of the container, whatever the mode: outside one, dev mode
# listens on loopback only.
ENV HERALD_ADDR=:8080
VOLUME ["/data"]
EXPOSE 8080
# Distroless has no shell or curl: the binary checks /readyz itself, on the
# address HERALD_ADDR configures. It is a separate process, so it sees the
# HERALD_* variables but not flags given to the container: configure the
# container with variables.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/herald", "healthcheck"]
ENTRYPOINT ["/herald"]
