package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.DataDir != "./data" || len(cfg.NATSURLs) != 0 || cfg.Auth != "dev" ||
		cfg.RoomHistory != 10000 || cfg.StreamReplicas != 1 || cfg.Partitions != 1 || cfg.RoomCache != 256<<20 || cfg.Stream != "HERALD" || cfg.MaxBodyBytes != 1<<20 ||
		cfg.DrainTimeout != 10*time.Second || cfg.ShutdownTimeout != 10*time.Second {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestConfigFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{
		"HERALD_ADDR":            "127.0.0.1:9000",
		"HERALD_NATS_URL":        "nats://a:4222, nats://b:4222",
		"HERALD_STREAM_REPLICAS": "3",
		"HERALD_APPLY_TIMEOUT":   "2s",
	}
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:9999"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" {
		t.Errorf("a flag must win over its variable: addr = %q", cfg.Addr)
	}
	if strings.Join(cfg.NATSURLs, "|") != "nats://a:4222|nats://b:4222" || cfg.StreamReplicas != 3 || cfg.ApplyTimeout != 2*time.Second {
		t.Errorf("variables not applied: %+v", cfg)
	}
}

func TestConfigModeDefaults(t *testing.T) {
	secret := testJWTSecret
	tests := []struct {
		name          string
		args          []string
		env           map[string]string
		introspection bool
		origins       []string
	}{
		{name: "dev", introspection: true, origins: []string{"*"}},
		{name: "jwt", args: []string{"--auth", "jwt", "--jwt-secret", secret}, introspection: false, origins: nil},
		{name: "jwt asking for introspection", args: []string{"--auth", "jwt", "--jwt-secret", secret, "--introspection"}, introspection: true},
		{name: "jwt asking by variable", env: map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWT_SECRET": secret, "HERALD_INTROSPECTION": "true"}, introspection: true},
		{name: "dev refusing", args: []string{"--introspection=false"}, introspection: false, origins: []string{"*"}},
		{name: "listed origins", args: []string{"--allowed-origins", "https://a.example, https://*.b.example"}, introspection: true,
			origins: []string{"https://a.example", "https://*.b.example"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Introspection != tt.introspection {
				t.Errorf("introspection = %v, want %v", cfg.Introspection, tt.introspection)
			}
			if got := allowedOriginsFor(cfg); tt.origins != nil && strings.Join(got, "|") != strings.Join(tt.origins, "|") ||
				tt.origins == nil && got != nil && tt.name == "jwt" {
				t.Errorf("allowed origins = %q, want %q", got, tt.origins)
			}
		})
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--addr", "8080"}, want: "--addr (HERALD_ADDR)"},
		{args: []string{"--addr", "localhost:99999"}, want: "invalid port"},
		{args: []string{"--auth", "none"}, want: `--auth (HERALD_AUTH): unknown mode "none"`},
		{args: []string{"--room-history", "0"}, want: "--room-history (HERALD_ROOM_HISTORY): must be at least 2"},
		{args: []string{"--partitions", "0"}, want: "--partitions (HERALD_PARTITIONS): must be between 1 and 256, got 0"},
		{args: []string{"--partitions", "257"}, want: "must be between 1 and 256, got 257"},
		{args: []string{"--room-cache", "1000"}, want: "--room-cache (HERALD_ROOM_CACHE): must be at least 1048576 (1 MiB), got 1000"},
		{args: []string{"--room-cache", "1GiB"}, want: "invalid value"},
		{args: []string{"--stream-replicas", "3"}, want: "embedded NATS server is a single node"},
		{args: []string{"--nats-url", "nats://x:4222", "--stream-replicas", "9"}, want: "between 1 and 5"},
		{args: []string{"--nats-url", "localhost:4222"}, want: "is not a URL"},
		// Blank, it used to run NATS embedded without a word.
		{args: []string{"--nats-url", ","}, want: "--nats-url (HERALD_NATS_URL): names no server"},
		{env: map[string]string{"HERALD_NATS_URL": " "}, want: "--nats-url (HERALD_NATS_URL): names no server"},
		{args: []string{"--nats-url", "nats://x:4222", "--nats-listen", "127.0.0.1:4222"}, want: "embedded NATS server only"},
		{args: []string{"--data-dir", ""}, want: "--data-dir (HERALD_DATA_DIR): must be set"},
		{args: []string{"--stream", "a.b"}, want: "not a valid stream name"},
		{args: []string{"--max-body-bytes", "10"}, want: "at least 1024"},
		{args: []string{"--apply-timeout", "0s"}, want: "--apply-timeout"},
		{args: []string{"--drain-timeout", "-1s"}, want: "--drain-timeout (HERALD_DRAIN_TIMEOUT): must be between 0s and 10m"},
		{env: map[string]string{"HERALD_DRAIN_TIMEOUT": "11m"}, want: "--drain-timeout (HERALD_DRAIN_TIMEOUT): must be between 0s and 10m"},
		{args: []string{"--shutdown-timeout", "0s"}, want: "--shutdown-timeout (HERALD_SHUTDOWN_TIMEOUT): must be positive and at most 1h"},
		// "No limit" written as a huge value: 2 × it overflowed the stop's
		// bound, and the first SIGTERM gave up at once with exit 1.
		{args: []string{"--shutdown-timeout", "2000000h"}, want: "--shutdown-timeout (HERALD_SHUTDOWN_TIMEOUT): must be positive and at most 1h"},
		{args: []string{"--log-level", "loud"}, want: "unknown level"},
		{args: []string{"--log-format", "xml"}, want: "unknown format"},
		{args: []string{"stray"}, want: `unexpected argument "stray"`},
		{env: map[string]string{"HERALD_ROOM_HISTORY": "many"}, want: `HERALD_ROOM_HISTORY (--room-history): invalid value "many": parse error`},
		{args: []string{"--room-history", "ten"}, want: "invalid value"},
		{args: []string{"--auth", "jwt"}, want: "jwt needs a key"},
		{args: []string{"--jwt-secret", "x"}, want: "--jwt-secret (HERALD_JWT_SECRET): applies to --auth=jwt only"},
		{args: []string{"--jwt-admin-claim", "admin"}, want: "--jwt-admin-claim (HERALD_JWT_ADMIN_CLAIM): applies to --auth=jwt only"},
		{args: []string{"--jwt-issuer", "https://id.example.com"}, want: "--jwt-issuer (HERALD_JWT_ISSUER): applies to --auth=jwt only"},
		{env: map[string]string{"HERALD_JWT_AUDIENCE": "herald"}, want: "--jwt-audience (HERALD_JWT_AUDIENCE): applies to --auth=jwt only"},
		{args: []string{"--jwt-cookie", "session"}, want: "--jwt-cookie (HERALD_JWT_COOKIE): applies to --auth=jwt only"},
		// No browser sends a cookie of such a name: the option did nothing.
		{args: []string{"--auth", "jwt", "--jwt-secret", strings.Repeat("s", 32), "--jwt-cookie", "my session"},
			want: `--jwt-cookie (HERALD_JWT_COOKIE): "my session" is not a cookie name`},
		{args: []string{"--auth", "jwt", "--jwt-secret", strings.Repeat("s", 32), "--jwt-cookie", "a=b"}, want: "is not a cookie name"},
		{args: []string{"--jwt-name-claim", "nickname"}, want: "--jwt-name-claim (HERALD_JWT_NAME_CLAIM): applies to --auth=jwt only"},
		{args: []string{"--mutation-rate", "-1"}, want: "--mutation-rate (HERALD_MUTATION_RATE): must not be negative"},
		{args: []string{"--max-text-length", "5000"}, want: "must be between 1 and 4000"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestConfigNamesVariableAndFlagOfUnparsableValues: a variable's value
// that does not parse is reported naming the variable and the flag it
// sets; every such value is, and alone: the problems validation would
// find are not (the README: "reported alone").
func TestConfigNamesVariableAndFlagOfUnparsableValues(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string // each in the error
		notWant []string // none in the error
	}{
		{name: "int", env: map[string]string{"HERALD_ROOM_HISTORY": "many"},
			want: []string{`HERALD_ROOM_HISTORY (--room-history): invalid value "many": parse error`}},
		{name: "int64 out of range", env: map[string]string{"HERALD_ROOM_CACHE": "99999999999999999999"},
			want: []string{`HERALD_ROOM_CACHE (--room-cache): invalid value "99999999999999999999": value out of range`}},
		{name: "duration", env: map[string]string{"HERALD_APPLY_TIMEOUT": "5"},
			want: []string{`HERALD_APPLY_TIMEOUT (--apply-timeout): invalid value "5": parse error`}},
		{name: "bool", env: map[string]string{"HERALD_INTROSPECTION": "maybe"},
			want: []string{`HERALD_INTROSPECTION (--introspection): invalid value "maybe": parse error`}},
		{name: "float", env: map[string]string{"HERALD_MUTATION_RATE": "fast"},
			want: []string{`HERALD_MUTATION_RATE (--mutation-rate): invalid value "fast": parse error`}},
		{name: "every unparsable variable",
			env: map[string]string{"HERALD_WS_QUEUE": "lots", "HERALD_DRAIN_TIMEOUT": "10"},
			want: []string{
				`HERALD_DRAIN_TIMEOUT (--drain-timeout): invalid value "10": parse error`,
				`HERALD_WS_QUEUE (--ws-queue): invalid value "lots": parse error`,
			}},
		{name: "reported alone", args: []string{"--partitions", "0"}, env: map[string]string{"HERALD_WS_QUEUE": "lots", "HERALD_AUTH": "none"},
			want:    []string{`HERALD_WS_QUEUE (--ws-queue): invalid value "lots": parse error`},
			notWant: []string{"--partitions (", "--auth ("}},
		{name: "a flag wins over its unparsable variable", args: []string{"--ws-queue", "8"}, env: map[string]string{"HERALD_WS_QUEUE": "lots", "HERALD_ROOM_HISTORY": "many"},
			want:    []string{`HERALD_ROOM_HISTORY (--room-history)`},
			notWant: []string{"HERALD_WS_QUEUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil {
				t.Fatal("parseConfig succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it not to contain %q", err, w)
				}
			}
		})
	}
}

func TestRunExitsWithUsageErrorOnBadConfig(t *testing.T) {
	var stderr strings.Builder
	if code := run([]string{"--auth", "none"}, func(string) string { return "" }, &stderr); code != 2 {
		t.Fatalf("exit code = %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "invalid configuration") {
		t.Fatalf("stderr = %q", stderr.String())
	}
}

// TestRunReportsBadConfigInLogFormat: with the json log format (by flag
// or variable), an invalid configuration is one JSON log line at level
// ERROR holding the error, and nothing else (not the flag package's
// usage); otherwise, and when the log format is itself the invalid
// setting, plain text. The exit code is 2 either way.
func TestRunReportsBadConfigInLogFormat(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		json bool
		want string // in the error
	}{
		{name: "json flag", args: []string{"--log-format", "json", "--auth", "none"}, json: true,
			want: `--auth (HERALD_AUTH): unknown mode "none"`},
		{name: "json variable", args: []string{"--room-history", "0"}, env: map[string]string{"HERALD_LOG_FORMAT": "json"}, json: true,
			want: "--room-history (HERALD_ROOM_HISTORY): must be at least 2"},
		{name: "json, two problems", args: []string{"--log-format=json", "--room-history", "0", "--partitions", "0"}, json: true,
			want: "--partitions (HERALD_PARTITIONS): must be between 1 and 256, got 0\n--room-history (HERALD_ROOM_HISTORY)"},
		{name: "json, bad variable", args: []string{"--log-format", "json"}, env: map[string]string{"HERALD_ROOM_HISTORY": "many"}, json: true,
			want: `HERALD_ROOM_HISTORY (--room-history): invalid value "many": parse error`},
		{name: "json flag, unknown flag after it", args: []string{"--log-format", "json", "--bogus"}, json: true,
			want: "flag provided but not defined: -bogus"},
		{name: "json variable, unknown flag", args: []string{"--bogus"}, env: map[string]string{"HERALD_LOG_FORMAT": "json"}, json: true,
			want: "flag provided but not defined: -bogus"},
		{name: "json flag, stray argument", args: []string{"--log-format", "json", "stray"}, json: true,
			want: `unexpected argument "stray"`},
		{name: "json flag after a bad value", args: []string{"--ws-queue", "abc", "--log-format", "json"}, json: true,
			want: `invalid value "abc" for flag -ws-queue`},
		{name: "json flag= after an unknown flag", args: []string{"--bogus", "-log-format=json"}, json: true,
			want: "flag provided but not defined: -bogus"},
		{name: "json flag after a stray argument", args: []string{"stray", "--log-format", "json"}, json: true,
			want: `unexpected argument "stray"`},
		{name: "text flag after a bad value, over a json variable", args: []string{"--ws-queue", "abc", "--log-format", "text"},
			env: map[string]string{"HERALD_LOG_FORMAT": "json"}, want: `invalid value "abc" for flag -ws-queue`},
		{name: "text", args: []string{"--auth", "none"}, want: `--auth (HERALD_AUTH): unknown mode "none"`},
		{name: "text, unknown flag", args: []string{"--bogus"}, want: "flag provided but not defined: -bogus"},
		{name: "invalid log format", args: []string{"--log-format", "xml", "--auth", "none"}, want: `--log-format (HERALD_LOG_FORMAT): unknown format "xml"`},
		{name: "invalid log format flag over json variable", args: []string{"--log-format", "JSON"}, env: map[string]string{"HERALD_LOG_FORMAT": "json"},
			want: `unknown format "JSON"`},
		{name: "invalid log format variable", args: []string{"--auth", "none"}, env: map[string]string{"HERALD_LOG_FORMAT": "jsonl"},
			want: `unknown format "jsonl"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			if code := run(tt.args, func(k string) string { return tt.env[k] }, &stderr); code != 2 {
				t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, stderr.String())
			}
			out := stderr.String()
			if !tt.json {
				if !strings.HasPrefix(out, "herald: invalid configuration:\n") && !strings.Contains(out, "\nherald: invalid configuration:\n") ||
					!strings.Contains(out, tt.want) || strings.HasPrefix(out, "{") {
					t.Fatalf("stderr = %q, want plain text with %q", out, tt.want)
				}
				return
			}
			if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("stderr = %q, want exactly one line", out)
			}
			var line struct {
				Time, Level, Msg, Err string
			}
			if err := json.Unmarshal([]byte(out), &line); err != nil {
				t.Fatalf("stderr = %q is not a JSON log line: %v", out, err)
			}
			if line.Level != "ERROR" || line.Msg != "invalid configuration" || line.Time == "" {
				t.Errorf("log line = %+v, want level ERROR, msg \"invalid configuration\" and a time", line)
			}
			if !strings.Contains(line.Err, tt.want) {
				t.Errorf("err = %q, want it to contain %q", line.Err, tt.want)
			}
		})
	}
}

func TestPprofListener(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.PprofAddr = freeAddr(t)
	a := startTestApp(t, cfg)
	resp, err := http.Get("http://" + cfg.PprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("pprof: %d %.80s", resp.StatusCode, body)
	}
	if resp, err := http.Get("http://" + a.Addr() + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("pprof is reachable on the public listener")
		}
	}
	if _, err := parseConfig([]string{"--pprof", "nope"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Fatal("--pprof nope accepted")
	}
	// Every wait on a peer has its bound, as on the public listener: an
	// idle kept-alive connection, a withheld body, an unread answer.
	if s := a.pprof; s.ReadTimeout <= 0 || s.IdleTimeout <= 0 || s.WriteTimeout <= 0 {
		t.Fatalf("pprof listener's bounds: read %v, idle %v, write %v; want each set", s.ReadTimeout, s.IdleTimeout, s.WriteTimeout)
	}
	// net/http/pprof extends the write bound by the profile's length: a
	// profile of its own length is still answered.
	resp, err = http.Get("http://" + cfg.PprofAddr + "/debug/pprof/profile?seconds=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("a one-second CPU profile: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestConfigRejectsBadJWTAndLimitValues: values that would only fail once
// Herald has opened the log (or never) are refused by the configuration,
// naming the flag and its variable.
func TestConfigRejectsBadJWTAndLimitValues(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--auth", "jwt", "--jwt-secret", "short"}, want: "--jwt-secret (HERALD_JWT_SECRET): must be at least 32 bytes, got 5"},
		{args: []string{"--auth", "jwt", "--jwks-file", "a.json", "--jwks-url", "https://idp.example/jwks"},
			want: "--jwks-url (HERALD_JWKS_URL): set only one of --jwks-url and --jwks-file"},
		{args: []string{"--auth", "jwt", "--jwks-url", "http://idp.example/jwks"},
			want: "--jwks-url (HERALD_JWKS_URL): http://idp.example/jwks must use https"},
		{env: map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWKS_URL": "idp.example/jwks"},
			want: "--jwks-url (HERALD_JWKS_URL): \"idp.example/jwks\" is not an absolute URL"},
		{args: []string{"--auth", "jwt", "--jwks-url", "ftp://idp.example/jwks"},
			want: "--jwks-url (HERALD_JWKS_URL): ftp://idp.example/jwks: scheme \"ftp\" is not http or https"},
		{args: []string{"--mutation-rate", "NaN"}, want: "--mutation-rate (HERALD_MUTATION_RATE): must be a finite number"},
		{env: map[string]string{"HERALD_WS_SUBSCRIBE_RATE": "+Inf"}, want: "--ws-subscribe-rate (HERALD_WS_SUBSCRIBE_RATE): must be a finite number"},
		{args: []string{"--stream", "a/b"}, want: "--stream (HERALD_STREAM): \"a/b\" is not a valid stream name"},
		{args: []string{"--stream", `a\b`}, want: "--stream (HERALD_STREAM)"},
		// The presence buckets (<stream>_PRESENCE) allow only [A-Za-z0-9_-].
		{args: []string{"--stream", "herald+prod"}, want: "--stream (HERALD_STREAM): \"herald+prod\" is not a valid stream name"},
		{env: map[string]string{"HERALD_STREAM": "hérald"}, want: "--stream (HERALD_STREAM)"},
		{args: []string{"--allowed-origins", "https://ok.example, app.example.com"},
			want: `--allowed-origins (HERALD_ALLOWED_ORIGINS): allowed origin "app.example.com": want *`},
		{env: map[string]string{"HERALD_ALLOWED_ORIGINS": "https://app.example.com/path"}, want: "--allowed-origins (HERALD_ALLOWED_ORIGINS)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestConfigErrorsHideCredentials: a configuration error about a URL names
// the URL without the credentials it carries (a NATS token or user and
// password, a JWKS URL's user and password): the error goes to the log.
func TestConfigErrorsHideCredentials(t *testing.T) {
	const secret = "s3cret-t0ken"
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--nats-url", secret + "@nats:4222"}, "is not a URL"},
		{[]string{"--nats-url", "nats://x:4222,alice:" + secret + "@nats:4222"}, "--stream-replicas"},
		{[]string{"--auth", "jwt", "--jwks-url", "https://alice:" + secret + "@exa mple.com/jwks"}, "--jwks-url"},
		{[]string{"--auth", "jwt", "--jwks-url", "http://alice:" + secret + "@example.com/jwks"}, "must use https"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"--stream-replicas", "9"}, tt.args...)
			_, err := parseConfig(args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the configuration error shows the credentials: %v", err)
			}
		})
	}
}

// TestOnLoopback: pprof on anything but a loopback address (a wildcard
// included) is warned about at start.
func TestOnLoopback(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false},
		{":0", false},
		{"[::]:0", false},
	} {
		l, err := net.Listen("tcp", tt.addr)
		if err != nil {
			t.Logf("%s: %v (no such address family here)", tt.addr, err)
			continue
		}
		if got := onLoopback(l.Addr()); got != tt.want {
			t.Errorf("onLoopback(%s listening on %s) = %v, want %v", tt.addr, l.Addr(), got, tt.want)
		}
		l.Close()
	}
}
