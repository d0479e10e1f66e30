package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/heraldhq/herald/internal/testrig"
)

// TestClientMistakesLeaveNoSecretsInLogs drives a jwt replica through
// client mistakes (bad, expired and wrongly signed tokens, cookies, bad
// JSON, bad variables, refused origins, bad connection_init, bad frames)
// with a debug-level log, and checks that no secret reaches it and nothing
// above DEBUG is logged for them: a client's mistake is not the
// operator's problem, and must not flood the log.
func TestClientMistakesLeaveNoSecretsInLogs(t *testing.T) {
	secret := testJWTSecret
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--auth", "jwt", "--jwt-secret", secret,
		"--jwt-cookie", "tok", "--allowed-origins", "https://ok.example"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DrainTimeout = 0
	logs := &testrig.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopTestApp(t, a) })
	waitReady(t, a)
	startLen := len(logs.String())

	token := func(sub string, ttl time.Duration, key string) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}).SignedString([]byte(key))
		return s
	}
	good := token("alice", time.Hour, secret)
	expired := token("alice", -time.Hour, secret)
	wrongKey := token("alice", time.Hour, strings.Repeat("k", 16)+"SECRETKEY0123456")
	secrets := []string{secret, good[strings.LastIndex(good, ".")+1:], expired[strings.LastIndex(expired, ".")+1:],
		wrongKey[strings.LastIndex(wrongKey, ".")+1:], "VARSECRET", "TEXTSECRET", "COOKIESECRET", "INITSECRET"}

	post := func(h map[string]string, body string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	const n = 50
	for i := range n {
		post(map[string]string{"Authorization": "Bearer " + expired}, js(map[string]any{"query": "{ rooms { nodes { id } } }"}))
		post(map[string]string{"Authorization": "Bearer " + wrongKey}, js(map[string]any{"query": "{ rooms { nodes { id } } }"}))
		post(map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, `{}`)
		post(map[string]string{"Cookie": "tok=COOKIESECRET" + fmt.Sprint(i)}, `{"query":"{ viewer { id } }"}`)
		post(map[string]string{"Authorization": "Bearer " + good}, js(map[string]any{"query": "mutation($t: String!) { postMessage(roomId: \"nope\", text: $t) { id } }", "variables": map[string]any{"t": "TEXTSECRET"}}))
		post(map[string]string{"Authorization": "Bearer " + good}, js(map[string]any{"query": "query($x: Int) { rooms { nodes { id } } }", "variables": map[string]any{"x": "VARSECRET"}}))
		post(map[string]string{"Authorization": "Bearer " + good}, `{"query":"{ rooms { `)
		post(nil, `not json VARSECRET`)
		post(map[string]string{"Origin": "https://evil.example"}, `{"query":"{ rooms { nodes { id } } }"}`)
		post(map[string]string{"Authorization": "Bearer " + good}, js(map[string]any{"query": "mutation { refreshSession(token: \"" + wrongKey + "\") { expiresAt } }"}))
	}
	// WebSockets: bad init, bad frames, refused origin.
	for range 20 {
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial("ws://"+a.Addr()+"/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + expired, "password": "INITSECRET"}})
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, _, _ = c.ReadMessage()
		c.Close()

		c, _, err = d.Dial("ws://"+a.Addr()+"/graphql", nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + good}})
		_, _, _ = c.ReadMessage()
		_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","id":"1","payload":{"query":"subscription { messagePosted(roomId: \"x\") { id } }","variables":{"a":"VARSECRET"}}}`))
		_, _, _ = c.ReadMessage()
		_ = c.WriteMessage(websocket.TextMessage, []byte("garbage VARSECRET\n level=ERROR"))
		_, _, _ = c.ReadMessage()
		c.Close()

		h := http.Header{"Origin": {"https://evil.example"}, "Cookie": {"tok=COOKIESECRET"}}
		if c, _, err := d.Dial("ws://"+a.Addr()+"/graphql", h); err == nil {
			c.Close()
		}
		raw, err := net.Dial("tcp", a.Addr())
		if err == nil {
			_, _ = raw.Write([]byte("GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n\x81\xff"))
			time.Sleep(5 * time.Millisecond)
			raw.Close()
		}
	}
	time.Sleep(300 * time.Millisecond)
	out := logs.String()[startLen:]
	for line := range strings.SplitSeq(out, "\n") {
		if line != "" && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("a client mistake logged above DEBUG: %s", line)
		}
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log holds secret %q", s)
		}
	}
}

// TestNATSListenerStrangersLogBoundedWarnings: whoever reaches the
// embedded NATS server's --nats-listen port (a port scanner, a load
// balancer probing the wrong port, a replica with an old token) is that
// connection's problem, not the server's: it logs no ERROR line, which
// would page an operator who alerts on ERROR, and the lot of them a
// bounded number of WARN lines (one per interval, at the default level),
// so that a stranger cannot fill the log, while the operator still hears
// of them.
func TestNATSListenerStrangersLogBoundedWarnings(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.NATSListen = freeAddr(t)
	cfg.NATSToken = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	logs := &testrig.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopTestApp(t, a) })
	waitReady(t, a)
	startLen := len(logs.String())
	const strangers = 40
	for i := range strangers {
		c, err := net.DialTimeout("tcp", cfg.NATSListen, 2*time.Second)
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
		_, _ = c.Read(buf) // -ERR: nats-server logged before it answered
		c.Close()
	}
	time.Sleep(300 * time.Millisecond)
	out := logs.String()[startLen:]
	lines, errs, warns := strings.Count(out, "\n"), strings.Count(out, "level=ERROR"), strings.Count(out, "level=WARN")
	first, _, _ := strings.Cut(out, "\n")
	// The strangers take well under the interval: one WARN line; two if
	// the run straddles it.
	if errs > 0 || warns < 1 || warns > 2 || lines > warns {
		t.Errorf("%d strangers on the NATS port left %d log lines, %d at ERROR and %d at WARN (default level info); want 1 or 2, at WARN; first:\n%s",
			strangers, lines, errs, warns, first)
	}
	if !strings.Contains(first, "component=nats-server") || !strings.Contains(first, " - cid:") {
		t.Errorf("the WARN line does not come from nats-server about a connection: %s", first)
	}
}
