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
// leaves for everything but WebSockets and HTTP streams: plain HTTP
// connections, NATS, data files. Of it, the listener's cap
// (acceptCapFor) keeps fdReserve from connections of any kind.
const socketReserve = 512

// fdReserve is how many file descriptors the public listener's cap leaves
// to the rest of the process, beyond one per partition. An idle replica
// with one partition holds 13 to 16 besides its connections: the
// embedded store's open message blocks (one per stream: the room
// directory and each partition, hence the allowance per partition), its
// lock file, the runtime's pollers, the listeners, standard streams.
// 128 leaves that several times over for what comes and goes: the store
// rewriting its index and state files, the pprof listener's
// connections, other replicas' NATS connections to --nats-listen, a JWKS
// fetch.
const fdReserve = 128

// connectionLimits sizes the replica's two bounds on connections:
// maxConns (--max-connections) on WebSockets and HTTP streams, beyond
// which upgrades get 503, and acceptCap on every connection the public
// listener holds, beyond which clients wait to be accepted, so that
// connections never take the descriptors the store needs. By default
// maxConns is below acceptCap, so a full replica refuses upgrades with
// 503 and still serves plain HTTP.
func connectionLimits(cfg config, logger *slog.Logger) (maxConns, acceptCap int) {
	limit, ok := openFileLimit()
	acceptCap = acceptCapFor(limit, ok, cfg.Partitions)
	if cfg.MaxConnections > 0 {
		if cfg.MaxConnections >= acceptCap {
			logger.Warn("--max-connections is not below the connections the open-file limit lets the HTTP listener hold: "+
				"past those, clients wait to be accepted instead of getting 503; raise the limit (`ulimit -n`) or lower --max-connections",
				"open_file_limit", limit, "max_connections", cfg.MaxConnections, "max_accepted_connections", acceptCap)
		}
		return cfg.MaxConnections, acceptCap
	}
	maxConns, sized := defaultMaxConnections(limit, ok)
	if !sized {
		logger.Warn("cannot size the WebSocket connection limit from the open-file limit; set --max-connections",
			"open_file_limit", limit, "max_connections", maxConns)
	}
	return maxConns, acceptCap
}

// acceptCapFor is how many connections the public listener holds at once
// under an open-file limit (ok false: unknown, and then no cap): the
// limit less fdReserve and one descriptor per partition, or less a
// quarter of a limit too small for that; at least 1. It is above the
// default --max-connections (defaultMaxConnections) for any limit of 4 or
// more, --partitions being at most 256.
func acceptCapFor(limit uint64, ok bool, partitions int) int {
	if !ok {
		return math.MaxInt32
	}
	reserve := min(uint64(fdReserve+max(partitions, 0)), limit/4)
	if limit-reserve > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(max(limit-reserve, 1))
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
