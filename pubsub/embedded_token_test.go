package pubsub

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/internal/testrig"
)

// TestEmbeddedTokenGuardsListener: with Options.Token, the embedded
// server's TCP clients need the token (nats://<token>@host:port), the
// Log's own in-process connection sends it, also after the server was
// started again (storeWatch), and no log line of either Log, the one that
// joined by URL included, shows it.
func TestEmbeddedTokenGuardsListener(t *testing.T) {
	const token = "embedded-token-test-0123456789abcdef"
	logs := &testrig.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	served := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0", Token: token, Logger: logger})
	mustAdd(t, served, "embedding_log", "x")

	url := served.ClientURL()
	if strings.Contains(url, token) {
		t.Fatalf("ClientURL %q shows the token", url)
	}
	if bound := served.ListenAddr(); bound == nil || bound.String() != strings.TrimPrefix(url, "nats://") {
		t.Fatalf("ListenAddr = %v, want the loopback address of %s", bound, url)
	}

	for _, tt := range []struct {
		name, url string
		ok        bool
	}{
		{"no token", url, false},
		{"another token", strings.Replace(url, "nats://", "nats://not-the-token@", 1), false},
		{"the token", strings.Replace(url, "nats://", "nats://"+token+"@", 1), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(tt.url, nats.Timeout(2*time.Second), nats.NoReconnect())
			if err == nil {
				defer nc.Close()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("connect %s: %v; want ok=%v", redactURLs([]string{tt.url}), err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("the refusal shows the token: %v", err)
			}
		})
	}

	// A replica that joins by URL, then sees the server started again.
	joined := openLog(t, Options{URLs: []string{strings.Replace(url, "nats://", "nats://"+token+"@", 1)}, Logger: logger})
	mustAdd(t, joined, "joined_log", "x")
	ctx := testCtx(t, 30*time.Second)
	if err := served.emb.restart(ctx); err != nil {
		t.Fatalf("restart the embedded server: %v", err)
	}
	waitFor(t, 10*time.Second, "both Logs to reconnect", func() bool {
		return served.Connected() && joined.Connected() && strings.Count(logs.String(), "NATS reconnected") >= 2
	})
	mustAdd(t, served, "after_restart", "x")
	if out := logs.String(); strings.Contains(out, token) {
		t.Fatalf("a log line shows the token:\n%s", out)
	}
}

// TestBindDescription: a wildcard bind is said to be on every interface,
// not shown as the 127.0.0.1 of the client URL.
func TestBindDescription(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 4222}, "all interfaces, port 4222"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 4222}, "all interfaces, port 4222"},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4222}, "127.0.0.1:4222"},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 4222}, "10.1.2.3:4222"},
		{nil, "nowhere"},
	} {
		if got := BindDescription(tt.addr); got != tt.want {
			t.Errorf("BindDescription(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestRedactURLsHidesTokens: a token or password in a server URL shows as
// xxxxx, also in a URL url.Parse cannot read, which was shown whole.
func TestRedactURLsHidesTokens(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://s3cret-token@127.0.0.1:4222", "nats://xxxxx@127.0.0.1:4222"},
		{"nats://user:s3cret@127.0.0.1:4222", "nats://user:xxxxx@127.0.0.1:4222"},
		{"nats://s3cret-token@127.0.0.1:42x22", "nats://xxxxx@127.0.0.1:42x22"},
		{"nats://us@er:s3cret@127.0.0.1:42x22", "nats://xxxxx@127.0.0.1:42x22"},
	} {
		if got := redactURLs([]string{tt.in}); got != tt.want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
