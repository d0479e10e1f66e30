package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/internal/urlcred"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// config is everything Herald can be told at start.
type config struct {
	Addr            string
	DataDir         string
	NATSURLs        []string
	NATSListen      string
	NATSToken       string
	MaxStore        int64
	Stream          string
	StreamReplicas  int
	Partitions      int
	RoomHistory     int
	RoomCache       int64
	Auth            string
	MaxBodyBytes    int64
	ApplyTimeout    time.Duration
	DrainTimeout    time.Duration
	ShutdownTimeout time.Duration
	Introspection   bool // see introspectionSet
	UntaggedCursors bool
	LogLevel        string
	LogFormat       string

	WSInitTimeout     time.Duration
	WSPingInterval    time.Duration
	WSPongTimeout     time.Duration
	WSQueue           int
	WSQueueBytes      int
	WSMaxMessageBytes int64

	PprofAddr string

	JWTSecret     string
	JWKSURL       string
	JWKSFile      string
	JWTIssuer     string
	JWTAudience   string
	JWTNameClaim  string
	JWTAdminClaim string
	JWTCookie     string

	AllowedOrigins []string // nil: the mode's default (see allowedOriginsFor)

	MaxConnections    int
	WSMaxOperations   int
	WSSubscribeRate   float64
	WSSubscribeBurst  int
	MutationRate      float64
	MutationBurst     int
	MaxDepth          int
	MaxComplexity     int
	MaxVariablesBytes int
	MaxTextLength     int

	// introspectionSet: --introspection (or its variable) was given; if
	// not, introspection follows the mode (on in dev, off with jwt).
	introspectionSet bool
	// natsURLBlank: --nats-url was given but names no server (" ", ","),
	// which would otherwise run NATS embedded without a word.
	natsURLBlank bool
	// originsBlank: --allowed-origins was given but names no origin, which
	// would otherwise replace the mode's default with same-origin only.
	originsBlank bool
	// variables are the HERALD_* variables that set flags.
	variables []string

	// startTimeout is not a flag: defaultStartTimeout, shorter in tests.
	startTimeout time.Duration
	// beforeMigrate is not a flag: nil, or in tests what stands for a
	// migration longer than startTimeout.
	beforeMigrate func()
	// beforeServe is not a flag: nil, or in tests what stands for a
	// signal in the last steps of the start, before HTTP is served.
	beforeServe func()
}

// minJWTSecretBytes is the shortest --jwt-secret auth.NewJWT accepts
// (HS256's output size, RFC 7518 §3.2).
const minJWTSecretBytes = 32

// minNATSTokenBytes is the shortest --nats-token: like an HS256 key, it
// is all that stands between the network and the whole event log.
const minNATSTokenBytes = minJWTSecretBytes

// minDistinctKeyBytes is the fewest distinct bytes a --jwt-secret or a
// --nats-token may have: a run of one character, or "abab…", is long
// enough yet holds next to no secret.
const minDistinctKeyBytes = 8

// publishedKeys are keys Herald's own documentation printed, ready to
// paste, before it told readers to generate one: copied to a server, they
// let anyone who read them sign tokens for any user.
var publishedKeys = []string{
	"0123456789abcdef0123456789abcdef", // examples/nextjs-chat/README.md
}

// Default --addr: on loopback in dev mode, whose clients name any user
// they like, so that `go run ./cmd/herald` is not open to the network it
// runs on (Apollo Router's dev mode does the same); on every interface
// with jwt, as a container or a server behind a load balancer needs.
const (
	defaultDevAddr = "127.0.0.1:8080"
	defaultAddr    = ":8080"
)

// minMaxStore is the smallest --max-store other than 0: below it the
// streams' own files leave no room for events.
const minMaxStore = 1 << 20

// defaultJWTNameClaim is the claim holding a token's display name unless
// --jwt-name-claim says otherwise.
const defaultJWTNameClaim = "name"

// envPrefix prefixes the environment variable of every flag:
// --nats-url is HERALD_NATS_URL.
const envPrefix = "HERALD_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags from args and, for flags not given, the matching
// HERALD_* variables from getenv; then it validates the result. On error,
// the config's LogFormat is still the one asked for (by flag, else by
// variable) as far as it could be read, so that the error can be reported
// in that format.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	c := config{startTimeout: defaultStartTimeout}
	var natsURL, origins string
	defaults := server.DefaultLimits()
	fs := flag.NewFlagSet("herald", flag.ContinueOnError)
	// The flag package writes its errors and the usage here; whether they
	// are shown is decided once the log format is known (parseFailed).
	var flagOutput bytes.Buffer
	fs.SetOutput(&flagOutput)
	// The default is set below from --auth: "" here keeps -h from printing one.
	fs.StringVar(&c.Addr, "addr", "", "HTTP listen address (host:port) (default: "+defaultDevAddr+", loopback only, in dev mode; "+defaultAddr+" with jwt)")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "directory for the embedded NATS server's JetStream files")
	fs.StringVar(&natsURL, "nats-url", "", "external NATS servers, comma-separated (default: run NATS embedded)")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "embedded NATS: also accept NATS clients on host:port (other replicas, the nats CLI); beyond loopback only with --nats-token")
	fs.StringVar(&c.NATSToken, "nats-token", "", "embedded NATS: token every NATS client must present; other replicas join with --nats-url nats://<token>@host:port (at least 32 bytes of letters, digits and -._~; required when --nats-listen is beyond loopback)")
	fs.Int64Var(&c.MaxStore, "max-store", 0, "embedded NATS: most bytes the event log may take on disk, beyond which writes are refused (0: no bound but the disk; when it fills, writes fail and /readyz fails until space is freed)")
	fs.StringVar(&c.Stream, "stream", "HERALD", "base name of the event log's JetStream streams (<name>_ROOMS, <name>_P0, ...)")
	fs.IntVar(&c.StreamReplicas, "stream-replicas", 1, "replicas of the event log stream (3 on a NATS cluster)")
	fs.IntVar(&c.Partitions, "partitions", 1, "streams the rooms are spread over, so writes spread over as many Raft groups on a NATS cluster; fixed when the log is created")
	fs.IntVar(&c.RoomHistory, "room-history", 10000, "messages each room keeps (older ones are discarded; rooms themselves are kept)")
	fs.Int64Var(&c.RoomCache, "room-cache", chat.DefaultRoomCache, "memory budget in bytes for the rooms this replica holds; beyond it, rooms no local subscriber watches are evicted, least recently used first")
	fs.StringVar(&c.Auth, "auth", "dev", "authentication mode: jwt (production: signed tokens) or dev (INSECURE: trusts the X-Herald-User header)")
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "jwt: HS256 shared secret (at least 32 bytes, of at least 8 different values; generate one: openssl rand -base64 48)")
	fs.StringVar(&c.JWKSURL, "jwks-url", "", "jwt: URL of the JWK Set with the RS256/ES256 public keys (cached; refetched for unknown key ids)")
	fs.StringVar(&c.JWKSFile, "jwks-file", "", "jwt: file holding the JWK Set with the RS256/ES256 public keys")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", "", "jwt: required iss claim (unchecked when empty)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", "", "jwt: required aud claim (unchecked when empty)")
	fs.StringVar(&c.JWTNameClaim, "jwt-name-claim", defaultJWTNameClaim, "jwt: claim holding the display name (falls back to sub)")
	fs.StringVar(&c.JWTAdminClaim, "jwt-admin-claim", "", "jwt: claim that, when true, makes a token an administrator's (disconnectUser); off when empty")
	fs.StringVar(&c.JWTCookie, "jwt-cookie", "", "jwt: also accept the token from this cookie (browsers' WebSocket upgrades); off when empty")
	fs.StringVar(&origins, "allowed-origins", "", "web origins allowed to use Herald from a browser, comma-separated: *, https://app.example.com, https://*.example.com (default: any in dev mode, same-origin only with jwt)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest accepted HTTP request body (and GET query string), in bytes")
	fs.DurationVar(&c.ApplyTimeout, "apply-timeout", 5*time.Second, "how long a mutation waits for its event to be stored and applied, and a query or mutation for a room not held yet to be loaded")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Second, "at shutdown: the window over which open WebSockets are closed with 1001, evenly spread, while HTTP is still served with /readyz failing (0: all at once)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "at shutdown, after the drain window: how long in-flight HTTP requests and closing WebSockets may take (at most 1h)")
	// The default is set below from --auth; false here keeps -h from printing "(default true)".
	fs.BoolVar(&c.Introspection, "introspection", false, "allow GraphQL introspection (default: on in dev mode, off with jwt)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.WSInitTimeout, "ws-init-timeout", 3*time.Second, "WebSocket: time allowed for connection_init before closing with 4408")
	fs.DurationVar(&c.WSPingInterval, "ws-ping-interval", 15*time.Second, "WebSocket: keepalive interval (graphql-transport-ws ping; legacy ka); also how often an idle event stream gets a keepalive comment, and a multipart stream a heartbeat (at least every 10s)")
	fs.DurationVar(&c.WSPongTimeout, "ws-pong-timeout", 15*time.Second, "WebSocket: a socket silent this long past a ping interval is closed as dead")
	fs.IntVar(&c.WSQueue, "ws-queue", 1024, "WebSocket: outbound queue per socket (and per HTTP stream: SSE, multipart), in messages; a full queue closes the socket with 1013 (a stream ends with SLOW_CONSUMER)")
	fs.IntVar(&c.WSQueueBytes, "ws-queue-bytes", 1<<20, "WebSocket: outbound queue per socket (and per HTTP stream), in bytes")
	fs.Int64Var(&c.WSMaxMessageBytes, "ws-max-message-bytes", 64<<10, "WebSocket: largest message accepted from a client (1009 above it)")
	fs.IntVar(&c.MaxConnections, "max-connections", 0, "WebSockets and HTTP streams (SSE, multipart) this replica holds at most; more get HTTP 503 (default: the open-file limit less 512, or half the limit when that leaves too few). Keep it below the listener's own bound on all connections, the open-file limit less 128 and one per partition, past which clients wait to be accepted")
	fs.IntVar(&c.WSMaxOperations, "ws-max-operations", defaults.MaxOperations, "WebSocket: operations open at once on one socket (0: no limit)")
	fs.Float64Var(&c.WSSubscribeRate, "ws-subscribe-rate", defaults.SubscribeRate, "WebSocket: operations one socket may start per second (RATE_LIMITED above it; 0: no limit)")
	fs.IntVar(&c.WSSubscribeBurst, "ws-subscribe-burst", defaults.SubscribeBurst, "WebSocket: operations one socket may start at once before --ws-subscribe-rate applies (0: the rate rounded up)")
	fs.Float64Var(&c.MutationRate, "mutation-rate", defaults.MutationRate, "mutations one user (an anonymous client: its address) may run per second on this replica (RATE_LIMITED above it; 0: no limit)")
	fs.IntVar(&c.MutationBurst, "mutation-burst", defaults.MutationBurst, "mutations one user (or anonymous address) may run at once before --mutation-rate applies (0: the rate rounded up)")
	fs.IntVar(&c.MaxDepth, "max-depth", defaults.MaxDepth, "deepest nesting of selections an operation may have (0: no limit)")
	fs.IntVar(&c.MaxComplexity, "max-complexity", defaults.MaxComplexity, "largest operation complexity (each field 1 plus its children, a page's children once per item it may hold; 0: no limit)")
	fs.IntVar(&c.MaxVariablesBytes, "max-variables-bytes", defaults.MaxVariablesBytes, "largest operation variables, in bytes of JSON (0: no limit)")
	fs.IntVar(&c.MaxTextLength, "max-text-length", 4000, "longest message text, in characters (at most 4000)")
	fs.BoolVar(&c.UntaggedCursors, "untagged-cursors", false, "issue cursors in the format of Heralds from before tagged cursors, which refuse tagged ones: set it on every replica during a rolling upgrade from such a Herald, then restart without it")
	fs.StringVar(&c.PprofAddr, "pprof", "", "serve net/http/pprof on this host:port (keep it on loopback); off when empty")
	// -h names each flag's variable: containers are configured with them.
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [" + envName(f.Name) + "]" })

	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q (all settings are flags; see -h)", fs.Arg(0))
	}
	if err == nil {
		err = nonDecimalArg(fs, args)
	}
	if err != nil {
		return parseFailed(c, fs, err, &flagOutput, getenv, usage)
	}
	if err := applyEnv(fs, getenv); err != nil {
		return c, err
	}
	addrSet := false
	fs.Visit(func(f *flag.Flag) {
		c.introspectionSet = c.introspectionSet || f.Name == "introspection"
		addrSet = addrSet || f.Name == "addr"
	})
	c.introspectionSet = c.introspectionSet || getenv(envName("introspection")) != ""
	if !c.introspectionSet {
		c.Introspection = c.Auth == "dev"
	}
	if !addrSet {
		c.Addr = defaultAddr
		if c.Auth == "dev" {
			c.Addr = defaultDevAddr
		}
	}
	if origins != "" {
		c.AllowedOrigins = []string{}
		for _, o := range strings.Split(origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	for _, u := range strings.Split(natsURL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.NATSURLs = append(c.NATSURLs, u)
		}
	}
	c.natsURLBlank = natsURL != "" && len(c.NATSURLs) == 0
	c.originsBlank = origins != "" && len(c.AllowedOrigins) == 0
	fs.VisitAll(func(f *flag.Flag) { c.variables = append(c.variables, envName(f.Name)) })
	return c, c.validate()
}

// parseFailed returns a failed parse's err with c, after it settled c's
// LogFormat: the flag's if it was given before the parse stopped,
// otherwise its variable's, which were not applied. It shows what the flag
// package wrote (its message and the usage) on usage: always for -h, which
// a human asked for; for an error, only when the log format is not json,
// since the error, which holds that message, is then reported as one JSON
// line that the usage must not surround.
func parseFailed(c config, fs *flag.FlagSet, err error, flagOutput *bytes.Buffer, getenv func(string) string, usage io.Writer) (config, error) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "log-format" })
	if v, ok := logFormatIn(fs.Args()); ok {
		c.LogFormat, given = v, true
	}
	if v := getenv(envName("log-format")); !given && v != "" {
		c.LogFormat = v
	}
	if errors.Is(err, flag.ErrHelp) || c.LogFormat != "json" {
		_, _ = usage.Write(flagOutput.Bytes())
	}
	return c, err
}

// logFormatIn returns the value of the last --log-format in args, what
// the flag package left unparsed when it stopped at an error (a bad value,
// an unknown flag) or a stray argument: a json log format asked for after
// the mistake still applies to its report. Like the flag package, it stops
// at "--" and takes -log-format, --log-format, with "=" or the next
// argument.
func logFormatIn(args []string) (format string, found bool) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			break
		}
		name, value, hasValue := strings.Cut(arg, "=")
		if name != "-log-format" && name != "--log-format" {
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				break
			}
			i++
			value = args[i]
		}
		format, found = value, true
	}
	return format, found
}

// applyEnv sets every flag that was not given on the command line from its
// environment variable, if that is set. A value that does not parse is
// reported naming the variable and the flag it sets; every such value is.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if otherBase(f, v) {
				errs = append(errs, fmt.Errorf("%s (--%s): invalid value %q: %s", envName(f.Name), f.Name, v, notDecimal))
				return
			}
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s (--%s): invalid value %q: %w", envName(f.Name), f.Name, v, err))
			}
		}
	})
	return errors.Join(errs...)
}

func (c config) validate() error {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		msg := c.hideCredentials(fmt.Sprintf(format, args...))
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flagName, envName(flagName), msg))
	}
	if err := checkHostPort(c.Addr); err != nil {
		bad("addr", "%v", err)
	}
	if c.NATSListen != "" {
		if err := checkHostPort(c.NATSListen); err != nil {
			bad("nats-listen", "%v", err)
		}
		if len(c.NATSURLs) > 0 {
			bad("nats-listen", "applies to the embedded NATS server only, but --nats-url points at an external one")
		}
	}
	c.validateNATSToken(bad)
	switch {
	case c.MaxStore < 0:
		bad("max-store", "must not be negative, got %d (0: no bound but the disk)", c.MaxStore)
	case c.MaxStore > 0 && c.MaxStore < minMaxStore:
		bad("max-store", "must be 0 (no bound but the disk) or at least %d (1 MiB), got %d", minMaxStore, c.MaxStore)
	case c.MaxStore > 0 && len(c.NATSURLs) > 0:
		bad("max-store", "applies to the embedded NATS server only, but --nats-url points at an external one (set max_file_store in its configuration)")
	}
	if len(c.NATSURLs) == 0 && strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "must be set when NATS runs embedded")
	}
	if c.natsURLBlank {
		bad("nats-url", "names no server; leave it unset (or empty) to run NATS embedded")
	}
	if c.originsBlank {
		bad("allowed-origins", "names no origin; leave it unset (or empty) for the mode's default")
	}
	for _, u := range c.NATSURLs {
		userinfo, _ := urlcred.UserPart(u)
		if !strings.Contains(u, "://") {
			bad("nats-url", "%q is not a URL; write nats://host:4222", u)
		} else if strings.ContainsAny(userinfo, "/?#") {
			// A NATS URL has no path, query or fragment: the "@" after
			// one ends a password or token that ended the host early.
			bad("nats-url", `%q: its password or token holds a "/", "?" or "#", which ends a URL's host; write them %%2F, %%3F and %%23`, u)
		} else if parsed, err := url.Parse(u); err != nil {
			// Here, not at the dial: this error goes through
			// hideCredentials, and the URL may carry a token.
			bad("nats-url", "%q is not a URL: %s", u, urlcred.ParseProblem(u, err))
		} else if !natsScheme(parsed.Scheme) {
			// nats.go dials any other scheme as plain nats://, so an
			// https:// URL would send the token unencrypted.
			bad("nats-url", "%q: NATS does not speak %s://; write nats:// (tls:// for TLS, ws:// or wss:// for WebSocket)", u, parsed.Scheme)
		} else if !validURLPort(parsed) {
			bad("nats-url", "%q has an invalid port", u)
		}
	}
	if !pubsub.ValidStreamName(c.Stream) {
		bad("stream", "%q is not a valid stream name (ASCII letters, digits, _ and - only)", c.Stream)
	} else if len(c.Stream) > pubsub.MaxStreamName {
		bad("stream", "is %d characters, at most %d: NATS names a stream at most 255, and the longest made from it is KV_<name>_PRESENCE_REPLICAS",
			len(c.Stream), pubsub.MaxStreamName)
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("stream-replicas", "must be between 1 and 5, got %d", c.StreamReplicas)
	}
	if len(c.NATSURLs) == 0 && c.StreamReplicas != 1 {
		bad("stream-replicas", "the embedded NATS server is a single node; use 1 or point --nats-url at a cluster")
	}
	if c.Partitions < 1 || c.Partitions > 256 {
		bad("partitions", "must be between 1 and 256, got %d", c.Partitions)
	}
	if c.RoomCache < 1<<20 {
		bad("room-cache", "must be at least 1048576 (1 MiB), got %d", c.RoomCache)
	}
	if c.RoomHistory < 2 {
		// With 1, a member's removal would discard their addition, and a
		// message's deletion its post: no member could be added to a
		// private room, and no message edited or reacted to.
		bad("room-history", "must be at least 2, got %d: the log keeps a member's last removal and a message's deletion within it", c.RoomHistory)
	}
	switch c.Auth {
	case "dev":
		// A jwt setting given in dev mode is refused rather than ignored:
		// it usually means --auth=jwt was forgotten, and dev mode trusts
		// anyone's X-Herald-User header.
		for _, f := range []struct{ flag, v, unset string }{
			{"jwt-secret", c.JWTSecret, ""}, {"jwks-url", c.JWKSURL, ""}, {"jwks-file", c.JWKSFile, ""},
			{"jwt-issuer", c.JWTIssuer, ""}, {"jwt-audience", c.JWTAudience, ""}, {"jwt-name-claim", c.JWTNameClaim, defaultJWTNameClaim},
			{"jwt-admin-claim", c.JWTAdminClaim, ""}, {"jwt-cookie", c.JWTCookie, ""},
		} {
			if f.v != f.unset {
				bad(f.flag, "applies to --auth=jwt only, but --auth is dev")
			}
		}
	case "jwt":
		if c.JWTSecret == "" && c.JWKSURL == "" && c.JWKSFile == "" {
			bad("auth", "jwt needs a key: set --jwt-secret (HS256) or --jwks-url / --jwks-file (RS256, ES256)")
		}
		if c.JWTSecret != "" && len(c.JWTSecret) < minJWTSecretBytes {
			bad("jwt-secret", "must be at least %d bytes, got %d", minJWTSecretBytes, len(c.JWTSecret))
		} else if c.JWTSecret != "" {
			if weak := weakKey(c.JWTSecret); weak != "" {
				bad("jwt-secret", "%s, and with it anyone could sign tokens for any user; generate one, e.g. openssl rand -base64 48", weak)
			}
		}
		// A value read from a file or a secret often ends with a line
		// break: kept, it would make every token fail, with Herald up.
		for _, v := range []struct{ flag, value string }{
			{"jwt-secret", c.JWTSecret}, {"jwt-issuer", c.JWTIssuer}, {"jwt-audience", c.JWTAudience},
		} {
			if strings.TrimSpace(v.value) != v.value {
				bad(v.flag, "begins or ends with white space (a line break from a file?); no token would match it")
			}
		}
		if c.JWKSURL != "" && c.JWKSFile != "" {
			bad("jwks-url", "set only one of --jwks-url and --jwks-file")
		}
		if c.JWKSURL != "" {
			if err := auth.CheckJWKSURL(c.JWKSURL); err != nil {
				bad("jwks-url", "%v", err)
			} else if u, err := url.Parse(c.JWKSURL); err == nil && !validURLPort(u) {
				bad("jwks-url", "%q has an invalid port", c.JWKSURL)
			}
		}
		if c.JWTCookie != "" && !validCookieName(c.JWTCookie) {
			// A browser never sends such a cookie: the token would never be read from it.
			bad("jwt-cookie", "%q is not a cookie name (RFC 6265: ASCII letters, digits and !#$%%&'*+-.^_`|~)", c.JWTCookie)
		}
	default:
		bad("auth", "unknown mode %q (jwt or dev)", c.Auth)
	}
	for _, l := range []struct {
		flag string
		v    float64
	}{
		{"max-connections", float64(c.MaxConnections)}, {"ws-max-operations", float64(c.WSMaxOperations)},
		{"ws-subscribe-rate", c.WSSubscribeRate}, {"ws-subscribe-burst", float64(c.WSSubscribeBurst)},
		{"mutation-rate", c.MutationRate}, {"mutation-burst", float64(c.MutationBurst)},
		{"max-depth", float64(c.MaxDepth)}, {"max-complexity", float64(c.MaxComplexity)},
		{"max-variables-bytes", float64(c.MaxVariablesBytes)},
	} {
		switch {
		case math.IsNaN(l.v) || math.IsInf(l.v, 0):
			bad(l.flag, "must be a finite number, got %v", l.v)
		case l.v < 0:
			bad(l.flag, "must not be negative, got %v", l.v)
		}
	}
	if c.MaxTextLength < 1 || c.MaxTextLength > chat.MaxTextLength {
		bad("max-text-length", "must be between 1 and %d, got %d", chat.MaxTextLength, c.MaxTextLength)
	}
	if c.MaxBodyBytes < 1024 {
		bad("max-body-bytes", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.ApplyTimeout <= 0 {
		bad("apply-timeout", "must be positive, got %s", c.ApplyTimeout)
	}
	if c.DrainTimeout < 0 || c.DrainTimeout > 10*time.Minute {
		bad("drain-timeout", "must be between 0s and 10m, got %s", c.DrainTimeout)
	}
	if c.ShutdownTimeout <= 0 || c.ShutdownTimeout > time.Hour {
		// Bounded so that a stop's own bound (drain + 2 × this + 15 s)
		// cannot overflow, which made the first SIGTERM give up at once.
		bad("shutdown-timeout", "must be positive and at most 1h, got %s", c.ShutdownTimeout)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"ws-init-timeout", c.WSInitTimeout}, {"ws-ping-interval", c.WSPingInterval}, {"ws-pong-timeout", c.WSPongTimeout}} {
		if d.v < 10*time.Millisecond || d.v > 10*time.Minute {
			bad(d.flag, "must be between 10ms and 10m, got %s", d.v)
		}
	}
	if err := server.CheckAllowedOrigins(c.AllowedOrigins); err != nil {
		bad("allowed-origins", "%v", err)
	}
	if c.PprofAddr != "" {
		if err := checkHostPort(c.PprofAddr); err != nil {
			bad("pprof", "%v", err)
		}
	}
	if c.WSQueue < 1 {
		bad("ws-queue", "must be at least 1, got %d", c.WSQueue)
	}
	if c.WSQueueBytes < 4096 {
		bad("ws-queue-bytes", "must be at least 4096, got %d", c.WSQueueBytes)
	}
	if c.WSMaxMessageBytes < 1024 {
		bad("ws-max-message-bytes", "must be at least 1024, got %d", c.WSMaxMessageBytes)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "unknown level %q (debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "unknown format %q (text or json)", c.LogFormat)
	}
	return errors.Join(errs...)
}

// validateNATSToken checks --nats-token and whether --nats-listen needs
// one, reporting to bad. No message quotes the token: it goes to the log.
func (c config) validateNATSToken(bad func(flagName, format string, args ...any)) {
	embedded := len(c.NATSURLs) == 0
	if c.NATSListen != "" && embedded && c.NATSToken == "" {
		if host, _, err := net.SplitHostPort(c.NATSListen); err == nil && !loopbackHost(host) {
			// Whoever reaches the port would read every event, private
			// rooms' included, publish forged ones and delete the
			// streams, whatever --auth says.
			bad("nats-listen", "%q accepts NATS clients beyond loopback, and the embedded NATS server lets any of them read and write the whole event log: "+
				"set --nats-token (%s) too, or listen on 127.0.0.1", c.NATSListen, envName("nats-token"))
		}
	}
	if c.NATSToken == "" {
		return
	}
	switch {
	case !embedded:
		bad("nats-token", "applies to the embedded NATS server only, but --nats-url points at an external one (give its token in the URL: nats://<token>@host:4222)")
	case c.NATSListen == "":
		bad("nats-token", "applies with --nats-listen only: without it the embedded NATS server opens no socket")
	}
	const hint = "generate one, e.g. openssl rand -hex 32"
	switch {
	case strings.TrimSpace(c.NATSToken) != c.NATSToken || strings.ContainsAny(c.NATSToken, " \t\r\n"):
		bad("nats-token", "holds white space (a line break from a file?); %s", hint)
	case strings.Trim(c.NATSToken, urlUnreserved) != "":
		// Other replicas write it in a URL's user part, where anything
		// else would need escaping (and ":" would make it a user name).
		bad("nats-token", "must be letters, digits and -._~ only, as it is written in nats://<token>@host:port; %s", hint)
	case len(c.NATSToken) < minNATSTokenBytes:
		bad("nats-token", "must be at least %d bytes, got %d; %s", minNATSTokenBytes, len(c.NATSToken), hint)
	default:
		if weak := weakKey(c.NATSToken); weak != "" {
			bad("nats-token", "%s; %s", weak, hint)
		}
	}
}

// urlUnreserved are the characters a URL's user part takes as they are
// (RFC 3986 §2.3).
const urlUnreserved = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// weakKey says why key, a --jwt-secret or a --nats-token long enough,
// holds next to no secret, or returns "" when it does not seem to. It
// never quotes the key.
func weakKey(key string) string {
	if slices.Contains(publishedKeys, key) {
		return "is the example key printed in Herald's documentation (examples/nextjs-chat/README.md), which anyone can read"
	}
	var seen [256]bool
	distinct := 0
	for i := range len(key) {
		if !seen[key[i]] {
			seen[key[i]] = true
			distinct++
		}
	}
	if distinct < minDistinctKeyBytes {
		return fmt.Sprintf("is made of only %d different bytes (at least %d needed): it holds next to no secret", distinct, minDistinctKeyBytes)
	}
	return ""
}

// loopbackHost reports whether a listen address's host accepts
// connections from this host only: a loopback IP, or localhost. An empty
// host or a wildcard (every interface), or any other name, does not.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hideCredentials replaces in msg, which goes to the log, the credentials
// that --nats-url and --jwks-url may carry (nats://token@host,
// nats://user:password@host): wherever a URL of them is quoted, whole or
// not, with or without its scheme, as written or as url.URL writes it
// back (credentialForms), what comes before its "@" shows as
// url.URL.Redacted shows it, the password (or the token) as "xxxxx".
func (c config) hideCredentials(msg string) string {
	for _, raw := range append(slices.Clone(c.NATSURLs), c.JWKSURL) {
		for _, cred := range credentialForms(raw) {
			// As it is, and as %q writes it (a " or \ escaped).
			msg = strings.ReplaceAll(msg, cred.shown, cred.hidden)
			msg = strings.ReplaceAll(msg, quotedInside(cred.shown), quotedInside(cred.hidden))
		}
	}
	return msg
}

// credential is a URL's user part and its "@" as a message may show them,
// and what is to show instead.
type credential struct{ shown, hidden string }

// credentialForms are the forms in which the credentials of raw, a URL,
// may show in a message: as written, and as url.URL writes them back
// (its String, %v or %q of it), re-escaped ("!" as "%21", "*" as "%2A"),
// which the form as written does not match. None for a URL without a
// password or token.
//
// As written, the user part ends at the last "@" of everything after the
// scheme, path and query included, not at the first "/", "?" or "#" as
// url.Parse reads it: a token or password holding one of those unescaped
// (a base64 token's "/", a password's "#") is still hidden whole. The
// price is that a credential-free URL with an "@" in its path or query
// (https://idp/jwks?u=a@b) shows what comes before that "@" as "xxxxx";
// the two cannot be told apart.
func credentialForms(raw string) []credential {
	var forms []credential
	add := func(shown, user, password string, hasPassword bool) {
		switch {
		case hasPassword && password != "":
			forms = append(forms, credential{shown + "@", user + ":xxxxx@"})
		case !hasPassword && user != "": // a token
			forms = append(forms, credential{shown + "@", "xxxxx@"})
		}
	}
	if userinfo, ok := urlcred.UserPart(raw); ok {
		user, password, ok := strings.Cut(userinfo, ":")
		add(userinfo, user, password, ok)
	}
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		password, ok := u.User.Password()
		// The user name escaped as Redacted writes it.
		add(u.User.String(), url.User(u.User.Username()).String(), password, ok)
	}
	return forms
}

// quotedInside is s as strconv.Quote writes it, without the quotes.
func quotedInside(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// numberFlag reports whether the flag package reads f as a number, and as
// a float: an integer in any base Go source allows ("010" is 8, "0x10" is
// 16), a float in Go's float syntax ("0x1p4" is 16, "1_0" is 10).
func numberFlag(f *flag.Flag) (number, float bool) {
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.intValue", "*flag.int64Value", "*flag.uintValue", "*flag.uint64Value":
		return true, false
	case "*flag.float64Value":
		return true, true
	}
	return false, false
}

const notDecimal = "write it in decimal, without a leading zero, underscores or 0x (the flag package reads 010 as octal 8)"

// otherBase reports whether the flag package would read s, a value of f,
// as a number written other than in plain decimal (010, 0x10, 1_000,
// 0x1p4); what it cannot read at all is its to refuse.
func otherBase(f *flag.Flag, s string) bool {
	number, float := numberFlag(f)
	switch {
	case !number:
		return false
	case float:
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return false
		}
	default:
		if _, err := strconv.ParseInt(s, 0, 64); err != nil {
			return false
		}
	}
	d := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if float {
		// 0.5 and 1e3 are decimal; Inf and NaN are validate's to refuse.
		leadingZero := len(d) > 1 && d[0] == '0' && d[1] >= '0' && d[1] <= '9'
		return leadingZero || strings.ContainsAny(d, "_xX")
	}
	return d != "0" && (d[0] == '0' || strings.Trim(d, "0123456789") != "")
}

// nonDecimalArg refuses a numeric flag of args, as the flag package has
// just parsed them, whose value is not plain decimal.
func nonDecimalArg(fs *flag.FlagSet, args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return nil // the flags end here
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if !hasValue {
			if i++; i >= len(args) {
				return nil
			}
			value = args[i]
		}
		if otherBase(f, value) {
			return fmt.Errorf("--%s (%s): invalid value %q: %s", name, envName(name), value, notDecimal)
		}
	}
	return nil
}

// unknownVariables lists the HERALD_* variables of environ that set no
// flag: a typo (HERALD_ADRR) would otherwise go unnoticed. HERALD_TEST_*
// are the tests', and those Kubernetes gives every pod for a Service
// named herald are not Herald's to judge (serviceLinkVariable).
func (c config) unknownVariables(environ []string) []string {
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !strings.HasPrefix(name, envPrefix+"TEST_") &&
			!slices.Contains(c.variables, name) && !serviceLinkVariable(name) {
			unknown = append(unknown, name)
		}
	}
	return unknown
}

// serviceLinkVariable reports whether name is one of the variables
// Kubernetes sets in every pod of a namespace with a Service named
// herald: HERALD_SERVICE_HOST, HERALD_SERVICE_PORT[_<port name>],
// HERALD_PORT and HERALD_PORT_<port>_<TCP|UDP|SCTP>[_PROTO|_PORT|_ADDR].
// Warning of them at every start would teach operators to overlook the
// warning that names a real typo.
func serviceLinkVariable(name string) bool {
	rest, _ := strings.CutPrefix(name, envPrefix)
	switch {
	case rest == "SERVICE_HOST", rest == "SERVICE_PORT", rest == "PORT":
		return true
	case strings.HasPrefix(rest, "SERVICE_PORT_"):
		return true
	}
	port, ok := strings.CutPrefix(rest, "PORT_")
	if !ok {
		return false
	}
	digits, proto, ok := strings.Cut(port, "_")
	if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return false
	}
	proto, suffix, _ := strings.Cut(proto, "_")
	switch suffix {
	case "", "PROTO", "PORT", "ADDR":
	default:
		return false
	}
	return proto == "TCP" || proto == "UDP" || proto == "SCTP"
}

// validCookieName reports whether name is an RFC 6265 cookie-name, an
// HTTP token: visible ASCII but for the separators.
func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		b := name[i]
		if b <= ' ' || b >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, b) >= 0 {
			return false
		}
	}
	return true
}

// natsScheme reports whether nats.go gives scheme a meaning: tls and
// wss ask for TLS, ws and wss for WebSocket.
func natsScheme(scheme string) bool {
	switch scheme {
	case "nats", "tls", "ws", "wss":
		return true
	}
	return false
}

// validURLPort reports whether u's port, if it names one, is a TCP
// port: url.Parse takes any digits, which the dial refuses only later.
func validURLPort(u *url.URL) bool {
	p := u.Port()
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has an invalid port", addr)
	}
	return nil
}
