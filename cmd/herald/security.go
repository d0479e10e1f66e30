package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/pubsub"
)

// newAuthenticator builds the authenticator of cfg.Auth. With jwt, a JWKS
// URL is fetched once here, so a wrong URL stops Herald at start rather
// than refusing every client later.
func newAuthenticator(ctx context.Context, cfg config) (auth.Authenticator, error) {
	if cfg.Auth == "dev" {
		return auth.Dev{}, nil
	}
	var secret []byte // nil without --jwt-secret: []byte("") would be an HS256 key
	if cfg.JWTSecret != "" {
		secret = []byte(cfg.JWTSecret)
	}
	j, err := auth.NewJWT(ctx, auth.JWTOptions{
		Secret:     secret,
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

// securityWarn logs a security warning: insecure authentication, a
// listener beyond loopback, a HERALD_* variable that set nothing (a typo
// may have left a setting at an unsafe default). It logs at WARN, or at
// ERROR when the logger does not show WARN: max(WARN, --log-level), so
// that --log-level error, common in production, never hides that a
// replica is unsafe. Every security warning goes through this one helper.
func securityWarn(logger *slog.Logger, msg string, args ...any) {
	ctx := context.Background()
	level := slog.LevelWarn
	if !logger.Enabled(ctx, level) {
		level = slog.LevelError
	}
	logger.Log(ctx, level, msg, args...)
}

// devModeWarning is the warning dev mode logs at every start, for a
// replica serving HTTP on addr: beyond loopback, it says who can act as
// any user.
func devModeWarning(addr net.Addr) string {
	msg := "INSECURE development authentication (--auth=dev): every request acts as whoever its " +
		auth.DevHeader + " header or connection_init \"user\" key names. "
	if onLoopback(addr) {
		return msg + "Never expose this replica to untrusted clients."
	}
	return msg + "It is served beyond loopback, on " + pubsub.BindDescription(addr) +
		": anyone who can reach that address can act as any user. Keep --addr on 127.0.0.1 or use --auth=jwt."
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
	n, sized := defaultMaxConnections(limit, ok)
	if !sized {
		logger.Warn("cannot size the WebSocket connection limit from the open-file limit; set --max-connections",
			"open_file_limit", limit, "max_connections", n)
	}
	return n
}

// defaultMaxConnections is the connection limit for an open-file limit
// (ok false: unknown). sized is false when the limit could not be applied
// as documented: unknown (10000), too small to leave socketReserve (half
// of it), or beyond what an int holds (capped).
func defaultMaxConnections(limit uint64, ok bool) (n int, sized bool) {
	switch {
	case !ok:
		return 10000, false
	case limit <= 2*socketReserve:
		// Never more connections than files: half the limit, at least one.
		return int(max(limit/2, 1)), false
	case limit-socketReserve > math.MaxInt32:
		return math.MaxInt32, true
	}
	return int(limit - socketReserve), true
}
