package main

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestConfigRefusesWhatIsNotMeant: values the flag package or a loose
// reading would take in a sense the operator did not mean are refused,
// naming the flag and its variable.
func TestConfigRefusesWhatIsNotMeant(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		// A blank list would replace dev's "any" with same-origin only.
		{"allowed origins a comma", []string{"--allowed-origins", ","}, nil, "--allowed-origins (HERALD_ALLOWED_ORIGINS): names no origin"},
		{"allowed origins spaces", []string{"--allowed-origins", " , "}, nil, "--allowed-origins (HERALD_ALLOWED_ORIGINS): names no origin"},
		{"allowed origins variable blank", nil, map[string]string{"HERALD_ALLOWED_ORIGINS": " "}, "--allowed-origins (HERALD_ALLOWED_ORIGINS): names no origin"},
		// The flag package reads 010 as octal 8, 0x10 as 16.
		{"leading zero", []string{"--partitions", "010"}, nil, `--partitions (HERALD_PARTITIONS): invalid value "010": write it in decimal`},
		{"leading zero after =", []string{"--ws-subscribe-burst=0100"}, nil, `--ws-subscribe-burst (HERALD_WS_SUBSCRIBE_BURST): invalid value "0100"`},
		{"hex", []string{"--addr", ":0", "--room-history", "0x10"}, nil, `--room-history (HERALD_ROOM_HISTORY): invalid value "0x10"`},
		{"leading zero variable", nil, map[string]string{"HERALD_ROOM_HISTORY": "010"}, `HERALD_ROOM_HISTORY (--room-history): invalid value "010": write it in decimal`},
		{"underscores variable", nil, map[string]string{"HERALD_WS_QUEUE": "1_000"}, `HERALD_WS_QUEUE (--ws-queue): invalid value "1_000"`},
		// The rates are floats, in Go's float syntax: 0x1p4 is 16, 1_0 is 10.
		{"hex float", []string{"--mutation-rate", "0x1p4"}, nil, `--mutation-rate (HERALD_MUTATION_RATE): invalid value "0x1p4": write it in decimal`},
		{"float underscores", []string{"--ws-subscribe-rate", "1_0"}, nil, `--ws-subscribe-rate (HERALD_WS_SUBSCRIBE_RATE): invalid value "1_0"`},
		{"float leading zero", []string{"--mutation-rate=010"}, nil, `--mutation-rate (HERALD_MUTATION_RATE): invalid value "010"`},
		{"hex float variable", nil, map[string]string{"HERALD_WS_SUBSCRIBE_RATE": "0x1p4"}, `HERALD_WS_SUBSCRIBE_RATE (--ws-subscribe-rate): invalid value "0x1p4": write it in decimal`},
		{"float underscores variable", nil, map[string]string{"HERALD_MUTATION_RATE": "1_000"}, `HERALD_MUTATION_RATE (--mutation-rate): invalid value "1_000"`},
		// NATS names a stream at most 255 bytes: KV_<name>_PRESENCE_REPLICAS.
		{"stream too long", []string{"--stream", strings.Repeat("a", 235)}, nil, "--stream (HERALD_STREAM): is 235 characters, at most 234"},
		// A value from a file or a secret with its line break: every token 401.
		{"jwt secret with a line break", nil, map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWT_SECRET": strings.Repeat("k", 32) + "\n"},
			"--jwt-secret (HERALD_JWT_SECRET): begins or ends with white space"},
		{"jwt issuer with a space", []string{"--auth", "jwt", "--jwt-secret", strings.Repeat("k", 32), "--jwt-issuer", " https://idp.example"}, nil,
			"--jwt-issuer (HERALD_JWT_ISSUER): begins or ends with white space"},
		{"jwt audience with a line break", []string{"--auth", "jwt", "--jwt-secret", strings.Repeat("k", 32), "--jwt-audience", "herald\r\n"}, nil,
			"--jwt-audience (HERALD_JWT_AUDIENCE): begins or ends with white space"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// Plain decimal, with a + sign too, is read as written; so are a
	// fraction below one and an exponent.
	c, err := parseConfig([]string{"--partitions", "10", "--room-history=100", "--stream", strings.Repeat("a", 234), "--mutation-rate", "0.5"},
		func(k string) string {
			return map[string]string{"HERALD_WS_QUEUE": "+100", "HERALD_WS_SUBSCRIBE_RATE": "1e2"}[k]
		}, io.Discard)
	if err != nil || c.Partitions != 10 || c.RoomHistory != 100 || c.WSQueue != 100 || c.MutationRate != 0.5 || c.WSSubscribeRate != 100 {
		t.Fatalf("decimal values read as partitions %d, room history %d, ws queue %d, mutation rate %v, ws subscribe rate %v: %v",
			c.Partitions, c.RoomHistory, c.WSQueue, c.MutationRate, c.WSSubscribeRate, err)
	}
}

// TestConfigErrorsHideQuotedCredentials: the messages quote a URL with %q
// (validate's "is not a URL", url.Error's `parse "..."`), which escapes a
// '"' or '\' in a password or token: hideCredentials must hide that form
// too, or the credential goes to the log, escaped but readable.
func TestConfigErrorsHideQuotedCredentials(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		want    string   // in the error: it is the error we expect
		secrets []string // none may be in the error, escaped or not
	}{
		{name: "nats token with a quote", args: []string{"--nats-url", `tok"en-s3cret@nats:4222`},
			want: "--nats-url (HERALD_NATS_URL)", secrets: []string{`tok\"en-s3cret`, `tok"en-s3cret`, "en-s3cret"}},
		{name: "nats password with a backslash", args: []string{"--nats-url", `alice:pa\ss-s3cret@nats:4222`},
			want: "--nats-url (HERALD_NATS_URL)", secrets: []string{`pa\\ss-s3cret`, `pa\ss-s3cret`, "ss-s3cret"}},
		{name: "jwks password with a quote", args: []string{"--auth", "jwt", "--jwks-url", `https://alice:pa"ss-s3cret@idp.example/jwks`},
			want: "--jwks-url (HERALD_JWKS_URL)", secrets: []string{`pa\"ss-s3cret`, `pa"ss-s3cret`, "ss-s3cret"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, func(string) string { return "" }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			for _, s := range tt.secrets {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the configuration error shows the credential (%s): %v", s, err)
				}
			}
		})
	}
}

// TestUnknownVariableIsReported: a mistyped flag is refused, and a
// mistyped variable (HERALD_ADRR; HERALD_JWT_ISUSER would leave iss
// unchecked) is named in a warning at start (refusing it would trip over
// Kubernetes' service-link variables such as HERALD_SERVICE_HOST).
func TestUnknownVariableIsReported(t *testing.T) {
	t.Setenv("HERALD_ADRR", "127.0.0.1:1")
	p := launchProcess(t, "herald", "--log-level", "warn", "--drain-timeout", "0s", "--data-dir", t.TempDir())
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			if !strings.Contains(p.logs.String(), "HERALD_ADRR") {
				t.Fatalf("exited without naming HERALD_ADRR:\n%s", p.logs.String())
			}
			return
		default:
		}
		if resp, err := http.Get("http://" + p.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("neither ready nor exited after 20s:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop(30 * time.Second)
	if !strings.Contains(p.logs.String(), "HERALD_ADRR") {
		t.Fatalf("Herald started with HERALD_ADRR set (a typo of HERALD_ADDR) and never mentioned it; its output:\n%s", p.logs.String())
	}
}

// TestServiceLinkVariablesAreNotUnknown: Kubernetes gives every pod in a
// namespace with a Service named herald variables such as
// HERALD_SERVICE_HOST and HERALD_PORT_8080_TCP_ADDR. They set no flag, but
// they are no typo: a security warning at every start would teach
// operators to overlook the one that names a real typo, which is still
// named.
func TestServiceLinkVariablesAreNotUnknown(t *testing.T) {
	c, err := parseConfig(nil, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	environ := []string{
		"HERALD_SERVICE_HOST=10.0.0.11", "HERALD_SERVICE_PORT=8080", "HERALD_SERVICE_PORT_HTTP=8080",
		"HERALD_PORT=tcp://10.0.0.11:8080", "HERALD_PORT_8080_TCP=tcp://10.0.0.11:8080",
		"HERALD_PORT_8080_TCP_PROTO=tcp", "HERALD_PORT_8080_TCP_PORT=8080", "HERALD_PORT_8080_TCP_ADDR=10.0.0.11",
		"HERALD_PORT_4222_UDP_ADDR=10.0.0.11", "HERALD_ADDR=127.0.0.1:8080", "PATH=/usr/bin",
		// Typos, and names that only look like service links.
		"HERALD_ADRR=127.0.0.1:1", "HERALD_PORTS=1", "HERALD_PORT_X_TCP=1", "HERALD_PORT_8080_HTTP=1",
		"HERALD_PORT_8080_TCP_HOST=1", "HERALD_SERVICE_HOSTS=1",
	}
	want := []string{"HERALD_ADRR", "HERALD_PORTS", "HERALD_PORT_X_TCP", "HERALD_PORT_8080_HTTP",
		"HERALD_PORT_8080_TCP_HOST", "HERALD_SERVICE_HOSTS"}
	if got := c.unknownVariables(environ); !slices.Equal(got, want) {
		t.Errorf("unknown variables:\n got %q\nwant %q", got, want)
	}
}
