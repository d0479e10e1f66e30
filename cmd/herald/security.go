package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/heraldhq/herald/auth"
)

// newAuthenticator builds the authenticator of cfg.Auth. With jwt, a JWKS
// URL is fetched once here, so a wrong URL stops Herald at start rather
// than refusing every client later.
func newAuthenticator(ctx context.Context, cfg config) (auth.Authenticator, error) {
	if cfg.Auth == "dev" {
		return auth.Dev{}, nil
	}
	j, err := auth.NewJWT(ctx, auth.JWTOptions{
		Secret:     []byte(cfg.JWTSecret),
		JWKSFile:   cfg.JWKSFile,
		JWKSURL:    cfg.JWKSURL,
		Issuer:     cfg.JWTIssuer,
		Audience:   cfg.JWTAudience,
		NameClaim:  cfg.JWTNameClaim,
		AdminClaim: cfg.JWTAdminClaim,
		CookieName: cfg.JWTCookie,
	})
	if err != nil {
		return nil, fmt.Errorf("set up JWT authentication: %w", err)
	}
	return j, nil
}

// allowedOriginsFor is --allowed-origins, or the mode's default: any origin
// in dev mode (a local front end on another port just works), same-origin
// only with jwt (browsers elsewhere must be listed).
func allowedOriginsFor(cfg config) []string {
	if cfg.AllowedOrigins != nil {
		return cfg.AllowedOrigins
	}
	if cfg.Auth == "dev" {
		return []string{"*"}
	}
	return nil
}

// socketReserve is how many file descriptors the default connection limit
// leaves for everything but WebSockets: NATS, HTTP requests, data files.
const socketReserve = 512

// maxConnectionsFor is --max-connections, or by default the process's
// open-file limit less socketReserve, so that a full replica refuses
// upgrades with 503 instead of failing to accept anything at all.
func maxConnectionsFor(cfg config, logger *slog.Logger) int {
	if cfg.MaxConnections > 0 {
		return cfg.MaxConnections
	}
	limit, ok := openFileLimit()
	if !ok || limit <= 2*socketReserve {
		logger.Warn("cannot size the WebSocket connection limit from the open-file limit; using 10000 (set --max-connections)")
		return 10000
	}
	return int(limit) - socketReserve
}
