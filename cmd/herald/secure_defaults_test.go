package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/internal/testrig"
)

// testJWTSecret is an HS256 key the configuration accepts: long enough,
// of enough different bytes, and not one the documentation published.
const testJWTSecret = "test-only-hs256-key-not-for-production"

// testNATSToken is a --nats-token the configuration accepts.
const testNATSToken = "test-only-nats-token-0123456789abcdef"

func noEnv(string) string { return "" }

// startLoggedApp parses args as the binary would, builds the logger the
// binary would (newLogger, so --log-level and --log-format apply) and
// starts the app, stopped when the test ends.
func startLoggedApp(t *testing.T, args []string) (*app, *testrig.LogBuffer) {
	t.Helper()
	cfg, err := parseConfig(args, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("parse config %q: %v", args, err)
	}
	cfg.DrainTimeout = 0
	logs := &testrig.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, newLogger(cfg, logs))
	if err != nil {
		t.Fatalf("start herald: %v\n%s", err, logs)
	}
	t.Cleanup(func() { stopTestApp(t, a) })
	waitReady(t, a)
	return a, logs
}

// TestDevModeListensOnLoopbackByDefault: `go run ./cmd/herald` runs the
// development mode, where any client names any user, so its default
// address is loopback only; with jwt the default is every interface (a
// container publishes its port). An address given, by flag or variable,
// is used as given.
func TestDevModeListensOnLoopbackByDefault(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "dev", want: "127.0.0.1:8080"},
		{name: "dev asked for", args: []string{"--auth", "dev"}, want: "127.0.0.1:8080"},
		{name: "jwt", args: []string{"--auth", "jwt", "--jwt-secret", testJWTSecret}, want: ":8080"},
		{name: "jwt by variable", env: map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWT_SECRET": testJWTSecret}, want: ":8080"},
		{name: "dev on an address given", args: []string{"--addr", ":9090"}, want: ":9090"},
		{name: "dev on an address by variable", env: map[string]string{"HERALD_ADDR": "0.0.0.0:9090"}, want: "0.0.0.0:9090"},
		{name: "jwt on an address given", args: []string{"--auth", "jwt", "--jwt-secret", testJWTSecret, "--addr", "127.0.0.1:9090"}, want: "127.0.0.1:9090"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tt.want {
				t.Errorf("--addr is %q, want %q", cfg.Addr, tt.want)
			}
		})
	}
	if _, err := parseConfig([]string{"--addr", ""}, noEnv, io.Discard); err == nil || !strings.Contains(err.Error(), "--addr (HERALD_ADDR)") {
		t.Errorf("--addr \"\" given: %v; want it refused, not taken for the default", err)
	}
	if help := helpOf(t, "addr"); !strings.Contains(help, "127.0.0.1:8080") || !strings.Contains(help, ":8080 with jwt") {
		t.Errorf("-h says of -addr %q; want both defaults", help)
	}
}

// TestDevModeWarningNamesReach: dev mode warns at every start; served
// beyond loopback (an --addr given), it says that anyone who reaches the
// address can act as any user.
func TestDevModeWarningNamesReach(t *testing.T) {
	for _, tt := range []struct {
		addr    net.Addr
		want    string
		notWant string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "Never expose", "anyone who can reach"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "Never expose", "anyone who can reach"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "on all interfaces, port 8080: anyone who can reach that address can act as any user", ""},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 8080}, "on 192.0.2.7:8080: anyone who can reach", ""},
	} {
		msg := devModeWarning(tt.addr)
		if !strings.Contains(msg, "INSECURE") || !strings.Contains(msg, tt.want) || tt.notWant != "" && strings.Contains(msg, tt.notWant) {
			t.Errorf("dev mode on %s warns %q; want %q", tt.addr, msg, tt.want)
		}
	}
}

// TestSecurityWarningsSurviveLogLevel: security warnings are logged at
// WARN, or at ERROR when --log-level error would hide WARN: an operator
// who quietened the log still hears that a replica is insecure.
func TestSecurityWarningsSurviveLogLevel(t *testing.T) {
	for _, tt := range []struct{ level, want string }{
		{"debug", "level=WARN"}, {"info", "level=WARN"}, {"warn", "level=WARN"}, {"error", "level=ERROR"},
	} {
		var out bytes.Buffer
		securityWarn(newLogger(config{LogLevel: tt.level, LogFormat: "text"}, &out), "unsafe", "k", "v")
		if got := out.String(); !strings.Contains(got, tt.want) || !strings.Contains(got, "msg=unsafe k=v") {
			t.Errorf("--log-level %s: a security warning logged %q; want it at %s", tt.level, got, tt.want)
		}
	}

	// And at start: the development mode's warning.
	_, logs := startLoggedApp(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "error"})
	if !strings.Contains(logs.String(), "INSECURE development authentication") {
		t.Errorf("--auth=dev started with --log-level error and logged no word of its insecure authentication; start log:\n%s", logs)
	}
}

// TestNATSListenBeyondLoopbackNeedsToken: the embedded NATS server lets
// its clients read and write the whole event log, so a --nats-listen
// beyond loopback (a host-less one included: every interface) is refused
// without --nats-token, naming both flags; a loopback one works without.
// The token itself is checked, and never quoted in an error.
func TestNATSListenBeyondLoopbackNeedsToken(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // "" for accepted
	}{
		{name: "loopback", args: []string{"--nats-listen", "127.0.0.1:4222"}},
		{name: "localhost", args: []string{"--nats-listen", "localhost:4222"}},
		{name: "IPv6 loopback", args: []string{"--nats-listen", "[::1]:4222"}},
		{name: "loopback with a token", args: []string{"--nats-listen", "127.0.0.1:4222", "--nats-token", testNATSToken}},
		{name: "every interface with a token", args: []string{"--nats-listen", ":4222", "--nats-token", testNATSToken}},
		{name: "token by variable", env: map[string]string{"HERALD_NATS_LISTEN": "0.0.0.0:4222", "HERALD_NATS_TOKEN": testNATSToken}},
		{name: "host-less", args: []string{"--nats-listen", ":4222"},
			want: `--nats-listen (HERALD_NATS_LISTEN): ":4222" accepts NATS clients beyond loopback`},
		{name: "IPv4 wildcard", args: []string{"--nats-listen", "0.0.0.0:4222"}, want: "set --nats-token (HERALD_NATS_TOKEN) too"},
		{name: "IPv6 wildcard", env: map[string]string{"HERALD_NATS_LISTEN": "[::]:4222"}, want: "set --nats-token (HERALD_NATS_TOKEN) too"},
		{name: "an interface", args: []string{"--nats-listen", "10.0.0.5:4222"}, want: "set --nats-token (HERALD_NATS_TOKEN) too"},
		{name: "a name", args: []string{"--nats-listen", "herald-1.internal:4222"}, want: "set --nats-token (HERALD_NATS_TOKEN) too"},
		{name: "short token", args: []string{"--nats-listen", ":4222", "--nats-token", "s3cret-Tok3n"},
			want: "--nats-token (HERALD_NATS_TOKEN): must be at least 32 bytes, got 12"},
		{name: "token with a line break", env: map[string]string{"HERALD_NATS_LISTEN": ":4222", "HERALD_NATS_TOKEN": testNATSToken + "\n"},
			want: "--nats-token (HERALD_NATS_TOKEN): holds white space"},
		{name: "token not for a URL", args: []string{"--nats-listen", ":4222", "--nats-token", "s3cret/Tok3n+s3cret/Tok3n+s3cret/Tok3n="},
			want: "--nats-token (HERALD_NATS_TOKEN): must be letters, digits and -._~ only"},
		{name: "guessable token", args: []string{"--nats-listen", ":4222", "--nats-token", strings.Repeat("s3cret", 6)},
			want: "--nats-token (HERALD_NATS_TOKEN): is made of only 6 different bytes"},
		{name: "token without a listener", args: []string{"--nats-token", testNATSToken},
			want: "--nats-token (HERALD_NATS_TOKEN): applies with --nats-listen only"},
		{name: "token for an external server", args: []string{"--nats-url", "nats://n1:4222", "--nats-token", testNATSToken},
			want: "--nats-token (HERALD_NATS_TOKEN): applies to the embedded NATS server only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v; want it to contain %q", err, tt.want)
			case err != nil && (strings.Contains(err.Error(), testNATSToken) || strings.Contains(err.Error(), "s3cret")):
				t.Fatalf("the error quotes the token: %v", err)
			}
		})
	}
}

// TestNATSTokenGuardsTheEmbeddedServer: with --nats-token, the embedded
// NATS server refuses clients without it, takes those with it in the URL
// (how other replicas join), the replica itself works, and the start log
// says where NATS listens without showing the token.
func TestNATSTokenGuardsTheEmbeddedServer(t *testing.T) {
	natsAddr := freeAddr(t)
	a, logs := startLoggedApp(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--nats-listen", natsAddr, "--nats-token", testNATSToken})
	createRoom(t, a.Addr(), "alice", "general")

	for _, tt := range []struct {
		name, url string
		ok        bool
	}{
		{"no token", "nats://" + natsAddr, false},
		{"another token", "nats://not-the-token-0123456789abcdefghij@" + natsAddr, false},
		{"the token", "nats://" + testNATSToken + "@" + natsAddr, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(tt.url, nats.Timeout(2*time.Second), nats.NoReconnect())
			if err == nil {
				nc.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("connect: %v; want ok=%v", err, tt.ok)
			}
		})
	}

	out := logs.String()
	if !strings.Contains(out, "embedded NATS accepts clients from this host") || !strings.Contains(out, "listen="+natsAddr) {
		t.Errorf("the start log does not say NATS listens on %s:\n%s", natsAddr, out)
	}
	if strings.Contains(out, testNATSToken) {
		t.Errorf("the log shows the NATS token:\n%s", out)
	}
}

// TestNATSListenerBeyondLoopbackIsWarned: the start log says where the
// embedded NATS server listens, a wildcard as every interface (not the
// 127.0.0.1 of the client URL), and beyond loopback as a security warning,
// shown whatever --log-level.
func TestNATSListenerBeyondLoopbackIsWarned(t *testing.T) {
	tests := []struct {
		name  string
		bound net.Addr
		level string
		want  []string
	}{
		{"loopback", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4222}, "info",
			[]string{"level=INFO", "listen=127.0.0.1:4222", "token=true"}},
		{"every interface", &net.TCPAddr{IP: net.IPv4zero, Port: 4222}, "info",
			[]string{"level=WARN", `listen="all interfaces, port 4222"`, "beyond loopback", "no TLS"}},
		{"every interface, log level error", &net.TCPAddr{IP: net.IPv6unspecified, Port: 4222}, "error",
			[]string{"level=ERROR", `listen="all interfaces, port 4222"`, "beyond loopback"}},
		{"an interface", &net.TCPAddr{IP: net.ParseIP("10.0.0.5"), Port: 4222}, "info",
			[]string{"level=WARN", "listen=10.0.0.5:4222", "beyond loopback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			logNATSListener(newLogger(config{LogLevel: tt.level, LogFormat: "text"}, &out), tt.bound, "nats://127.0.0.1:4222", true)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("logged %q; want %q in it", out.String(), w)
				}
			}
		})
	}
}

// TestConfigRefusesGuessableJWTSecret: an HS256 key long enough but that
// anyone can guess (a run of one character) or has read (the example key
// the documentation once printed) is refused like a short one, without
// the error quoting it.
func TestConfigRefusesGuessableJWTSecret(t *testing.T) {
	tests := []struct {
		name, secret, want string
	}{
		{"published example", "0123456789abcdef0123456789abcdef", "example key printed in Herald's documentation"},
		{"one character", strings.Repeat("a", 32), "made of only 1 different bytes"},
		{"two characters", strings.Repeat("ab", 24), "made of only 2 different bytes"},
		{"seven characters", strings.Repeat("abcdefg", 5), "made of only 7 different bytes"},
		{"generated", "vQ3x9Lr0-Zk2mN8pT5wY1aB7cD4eF6gH", ""},
		{"eight characters", strings.Repeat("abcdefgh", 4), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWT_SECRET": tt.secret}
			_, err := parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), "--jwt-secret (HERALD_JWT_SECRET): ") || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v; want a --jwt-secret error containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), tt.secret):
				t.Fatalf("the error quotes the key: %v", err)
			}
		})
	}
	// The key of this package's tests is one the configuration takes.
	if _, err := parseConfig([]string{"--auth", "jwt", "--jwt-secret", testJWTSecret}, noEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// TestMistypedNATSURLHidesItsToken: a --nats-url that url.Parse cannot
// read (a port mistyped) is refused by the configuration, and nothing
// Herald writes shows the token it carries. It reached nats.go, whose
// parse error quoted the URL whole, token and all, in "herald could not
// start".
func TestMistypedNATSURLHidesItsToken(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--nats-url", "nats://" + testNATSToken + "@127.0.0.1:42x22"}, noEnv, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "nats-url") {
		t.Errorf("exit %d, output %q; want 2 and an error naming --nats-url", code, stderr.String())
	}
	if strings.Contains(stderr.String(), testNATSToken) {
		t.Errorf("the output shows the NATS token: %s", stderr.String())
	}
}
