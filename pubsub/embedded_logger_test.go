package pubsub

import (
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// loggedLine is one line of a JSON slog handler's output.
type loggedLine struct {
	Level      string
	Msg        string
	Component  string
	Suppressed int
}

// recordingLogger logs at every level as JSON into a buffer, and lines
// parses what it holds.
func recordingLogger() (*slog.Logger, func(t *testing.T) []loggedLine) {
	logs := &testrig.LogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return logger, func(t *testing.T) []loggedLine {
		t.Helper()
		var out []loggedLine
		for raw := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
			if raw == "" {
				continue
			}
			var l loggedLine
			if err := json.Unmarshal([]byte(raw), &l); err != nil {
				t.Fatalf("log line %q: %v", raw, err)
			}
			out = append(out, l)
		}
		return out
	}
}

// TestServerLoggerLevels shows which nats-server lines serverLogger logs
// at which level: errors about one connection from outside (nats-server's
// "<address> - <kind>:<id> - " prefix) are that connection's doing and
// come out at WARN; every other error, the server's own, at ERROR.
func TestServerLoggerLevels(t *testing.T) {
	for _, tt := range []struct {
		name      string
		warnf     bool // logged through Warnf, else Errorf
		msg       string
		wantLevel string
	}{
		{"client auth failure", false, "127.0.0.1:43922 - cid:24 - Authorization Violation", "WARN"},
		{"client after CONNECT", false, `127.0.0.1:43922 - cid:24 - "v1.37.0:go:herald" - Client parser ERROR, state=0, i=0: proto='"GET / HTTP/1.1"...'`, "WARN"},
		{"IPv6 client", false, "[::1]:50123 - cid:7 - Authorization Violation", "WARN"},
		{"WebSocket behind a proxy", false, "203.0.113.9/10.0.0.1:443 - wid:3 - Authorization Violation", "WARN"},
		{"MQTT over WebSocket", false, "10.0.0.1:1883 - mid_ws:4 - Authorization Violation", "WARN"},
		{"route", false, "10.0.0.2:6222 - rid:5 - Route Error 'Authorization Violation'", "WARN"},
		{"gateway", false, "10.0.0.2:7222 - gid:6 - Gateway Error 'Authorization Violation'", "WARN"},
		{"leaf node", false, "10.0.0.3:7422 - lid_ws:9 - Leafnode Error 'Authorization Violation'", "WARN"},
		{"client warning", true, "127.0.0.1:43922 - cid:24 - Readloop processing time: 2.5s", "WARN"},

		{"listener", false, `Error listening on port: 127.0.0.1:4222, "address already in use"`, "ERROR"},
		{"store", false, "JetStream failed to store a msg on stream '$G > herald': write /data: no space left on device", "ERROR"},
		{"accept", false, "Temporary Client Accept Error(accept tcp: too many open files), sleeping 10ms", "ERROR"},
		{"internal client", false, "JETSTREAM - Publish Violation - Subject \"x\"", "ERROR"},
		{"in-process connection", false, "pipe - cid:5 - Slow Consumer Detected", "ERROR"},
		{"no id", false, "127.0.0.1:43922 - Authorization Violation", "ERROR"},
		{"unknown kind", false, "127.0.0.1:43922 - xid:3 - Authorization Violation", "ERROR"},
		{"id not a number", false, "127.0.0.1:43922 - cid:x - Authorization Violation", "ERROR"},
		{"address not host:port", false, "somewhere - cid:3 - Authorization Violation", "ERROR"},
		{"server warning", true, "Maximum payloads over 8.00 MB are generally discouraged", "WARN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logger, lines := recordingLogger()
			l := &serverLogger{log: logger}
			// nats-server passes the client's prefix inside the format,
			// escaped, or as an argument (RateLimitErrorf): either way
			// the line is classified as formatted.
			logf := l.Errorf
			if tt.warnf {
				logf = l.Warnf
			}
			logf("%s", tt.msg)
			got := lines(t)
			if len(got) != 1 || got[0].Level != tt.wantLevel || got[0].Msg != tt.msg {
				t.Fatalf("logged %+v; want one %s line %q", got, tt.wantLevel, tt.msg)
			}
		})
	}
}

// TestServerLoggerLimitsClientLines shows client-scoped lines logged at
// WARN at most once per clientLogInterval, the rest at DEBUG, and the next
// WARN line counting those, while the server's own errors all come out at
// ERROR.
func TestServerLoggerLimitsClientLines(t *testing.T) {
	const clientMsg, serverMsg = "127.0.0.1:40000 - cid:9 - Authorization Violation", "JetStream out of resources"
	logger, lines := recordingLogger()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := &serverLogger{log: logger, now: func() time.Time { return now }}
	steps := []struct {
		advance        time.Duration // before the line
		client         bool
		wantLevel      string
		wantSuppressed int
	}{
		{0, true, "WARN", 0},
		{0, true, "DEBUG", 0},
		{0, false, "ERROR", 0},
		{time.Second, true, "DEBUG", 0},
		{0, false, "ERROR", 0},
		{0, false, "ERROR", 0},
		{clientLogInterval - time.Second - time.Nanosecond, true, "DEBUG", 0},
		{time.Nanosecond, true, "WARN", 3},
		{0, true, "DEBUG", 0},
		{clientLogInterval, true, "WARN", 1},
		{clientLogInterval, true, "WARN", 0},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.client {
			l.Errorf("%s - %s", "127.0.0.1:40000 - cid:9", "Authorization Violation")
		} else {
			l.Errorf("JetStream out of %s", "resources")
		}
	}
	got := lines(t)
	if len(got) != len(steps) {
		t.Fatalf("logged %d lines for %d: %+v", len(got), len(steps), got)
	}
	for i, s := range steps {
		want := loggedLine{Level: s.wantLevel, Msg: serverMsg, Suppressed: s.wantSuppressed}
		if s.client {
			want.Msg = clientMsg
		}
		if got[i] != want {
			t.Errorf("line %d = %+v, want %+v", i, got[i], want)
		}
	}
}

// TestEmbeddedListenerStrangersLogWarnings: strangers on the embedded
// server's listener (a wrong token, a protocol that is not NATS) leave no
// ERROR line, and one WARN line for the lot, within clientLogInterval:
// nats-server's real client lines are recognised as client-scoped.
func TestEmbeddedListenerStrangersLogWarnings(t *testing.T) {
	logger, lines := recordingLogger()
	lg := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0", Token: "embedded-logger-test-0123456789abcdef", Logger: logger})
	addr := lg.ListenAddr().String()
	before := len(lines(t))

	const strangers = 6
	for i := range strangers {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		_, _ = c.Read(buf) // INFO
		if i%2 == 0 {
			_, _ = c.Write([]byte("CONNECT {\"auth_token\":\"wrong\",\"verbose\":false}\r\nPING\r\n"))
		} else {
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}
		_, _ = c.Read(buf) // -ERR, then the server closes
		c.Close()
	}
	// nats-server logs one line for each after it answered: wait for all
	// of them, at WARN or held back at DEBUG (its own Debugf it calls only
	// with its debug flag, which Herald leaves off).
	deadline := time.Now().Add(5 * time.Second)
	for {
		var warn, held int
		for _, l := range lines(t)[before:] {
			switch {
			case l.Component != "nats-server":
			case l.Level == "ERROR":
				t.Fatalf("a stranger on the listener logged at ERROR: %q", l.Msg)
			case !strings.Contains(l.Msg, " - cid:"):
			case l.Level == "WARN":
				warn++
			case l.Level == "DEBUG":
				held++
			}
		}
		if warn > 1 {
			t.Fatalf("%d strangers logged %d WARN lines within clientLogInterval, want 1", strangers, warn)
		}
		if warn+held >= strangers {
			if warn != 1 {
				t.Fatalf("%d strangers logged %d WARN lines, want 1", strangers, warn)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s, %d WARN and %d DEBUG lines for %d strangers; want 1 and %d", warn, held, strangers, strangers-1)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
