package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

const sessionSecret = "session-test-secret-of-32-bytes!"

// jwtConfig is a replica on loopback with --auth jwt and an admin claim.
func jwtConfig(t *testing.T) config {
	t.Helper()
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--auth", "jwt",
		"--jwt-secret", sessionSecret, "--jwt-admin-claim", "admin", "--mutation-rate", "0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// signToken signs an HS256 token for sub, valid until exp, with extra claims.
func signToken(t *testing.T, sub string, exp time.Time, extra jwt.MapClaims) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": sub, "exp": exp.Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(sessionSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gqlToken posts a GraphQL request with a bearer token ("" = none).
func gqlToken(t *testing.T, addr, token, query string, vars map[string]any, out any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	var r gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode response (%d): %v", resp.StatusCode, err)
	}
	if out != nil && r.Data != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
	return r
}

// wsClient speaks either WebSocket subprotocol, enough for these tests.
type wsClient struct {
	t      *testing.T
	ws     *websocket.Conn
	legacy bool
}

// wsMessage is a server message of either subprotocol.
type wsMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func dialWS(t *testing.T, addr, token string, legacy bool) *wsClient {
	t.Helper()
	proto := "graphql-transport-ws"
	if legacy {
		proto = "graphql-ws"
	}
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/graphql", nil)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	c := &wsClient{t: t, ws: ws, legacy: legacy}
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	if m := c.read(5 * time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %+v, want connection_ack", m)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	data, _ := json.Marshal(v)
	_ = c.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := c.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next message that is not a keepalive, within d.
func (c *wsClient) read(d time.Duration) wsMessage {
	c.t.Helper()
	m, err := c.next(d)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *wsClient) next(d time.Duration) (wsMessage, error) {
	deadline := time.Now().Add(d)
	for {
		_ = c.ws.SetReadDeadline(deadline)
		var m wsMessage
		if err := c.ws.ReadJSON(&m); err != nil {
			return wsMessage{}, err
		}
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			c.send(map[string]any{"type": "pong"})
			continue
		}
		return m, nil
	}
}

// start sends an operation under id.
func (c *wsClient) start(id, query string, vars map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.legacy {
		typ = "start"
	}
	c.send(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars}})
}

// result runs a query or mutation on the socket and returns its one result.
func (c *wsClient) result(id, query string, vars map[string]any) gqlResponse {
	c.t.Helper()
	c.start(id, query, vars)
	m := c.read(5 * time.Second)
	if m.ID != id || (m.Type != "next" && m.Type != "data") {
		c.t.Fatalf("got %s %s %s, want the result of %s", m.ID, m.Type, m.Payload, id)
	}
	var r gqlResponse
	if err := json.Unmarshal(m.Payload, &r); err != nil {
		c.t.Fatal(err)
	}
	if done := c.read(5 * time.Second); done.ID != id || done.Type != "complete" {
		c.t.Fatalf("got %+v, want complete for %s", done, id)
	}
	return r
}

// closeCode waits for the socket to close and returns the close code.
func (c *wsClient) closeCode(d time.Duration) int {
	c.t.Helper()
	for {
		_, err := c.next(d)
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("socket ended with %v, not a close frame", err)
	}
}

const postedQuery = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`

// expectPosted reads the next event of subscription id and checks its text.
func (c *wsClient) expectPosted(id, text string) {
	c.t.Helper()
	m := c.read(5 * time.Second)
	var p struct {
		Data struct{ MessagePosted struct{ Text string } }
	}
	_ = json.Unmarshal(m.Payload, &p)
	if m.ID != id || (m.Type != "next" && m.Type != "data") || p.Data.MessagePosted.Text != text {
		c.t.Fatalf("got %s %s %s, want %q on %s", m.ID, m.Type, m.Payload, text, id)
	}
}

// TestRefreshSession: refreshSession over either subprotocol replaces the
// socket's token with one for the same user: the subscription goes on past
// the old token's expiry and the socket closes with 4403 at the new one's.
// A token for another user, a bad token, and the mutation over plain HTTP
// are refused with FORBIDDEN, UNAUTHENTICATED and BAD_USER_INPUT, and
// leave the socket as it was.
func TestRefreshSession(t *testing.T) {
	a := startTestApp(t, jwtConfig(t))
	far := time.Now().Add(time.Hour)
	room := ""
	var created struct{ CreateRoom struct{ ID string } }
	gqlToken(t, a.Addr(), signToken(t, "alice", far, nil), `mutation { createRoom(name: "refresh") { id } }`, nil, &created)
	if room = created.CreateRoom.ID; room == "" {
		t.Fatal("no room")
	}
	post := func(text string) {
		t.Helper()
		r := gqlToken(t, a.Addr(), signToken(t, "bob", far, nil), `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`,
			map[string]any{"r": room, "t": text}, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("post: %+v", r.Errors)
		}
	}
	const refresh = `mutation($t: String!) { refreshSession(token: $t) { user { id } expiresAt } }`

	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			// JWT expiry has whole seconds: the first token expires 2 to 3 s
			// from now, the refreshed one 4 s after that.
			oldExp := time.Now().Add(3 * time.Second).Truncate(time.Second)
			newExp := oldExp.Add(4 * time.Second)
			c := dialWS(t, a.Addr(), signToken(t, "alice", oldExp, nil), legacy)
			c.start("s", postedQuery, map[string]any{"r": room})
			c.result("fence", `{ viewer { id } }`, nil) // the subscription is live

			for _, bad := range []struct{ token, code string }{
				{signToken(t, "mallory", far, nil), "FORBIDDEN"},
				{"not-a-jwt", "UNAUTHENTICATED"},
				{signToken(t, "alice", time.Now().Add(-time.Minute), nil), "UNAUTHENTICATED"},
			} {
				if r := c.result("bad", refresh, map[string]any{"t": bad.token}); r.code() != bad.code {
					t.Fatalf("refresh with a bad token: %+v, want %s", r, bad.code)
				}
			}
			var got struct {
				RefreshSession struct {
					User      struct{ ID string }
					ExpiresAt time.Time
				}
			}
			r := c.result("refresh", refresh, map[string]any{"t": signToken(t, "alice", newExp, nil)})
			if len(r.Errors) > 0 || json.Unmarshal(r.Data, &got) != nil {
				t.Fatalf("refresh: %+v", r)
			}
			if got.RefreshSession.User.ID != "alice" || !got.RefreshSession.ExpiresAt.Equal(newExp) {
				t.Fatalf("refreshSession = %+v, want alice until %s", got.RefreshSession, newExp)
			}

			// Past the old token's expiry the subscription still delivers.
			time.Sleep(time.Until(oldExp.Add(1500 * time.Millisecond)))
			post("after the old expiry")
			c.expectPosted("s", "after the old expiry")

			// And the new token's expiry closes the socket with 4403.
			if code := c.closeCode(time.Until(newExp) + 3*time.Second); code != 4403 {
				t.Fatalf("closed with %d at the new token's expiry, want 4403", code)
			}
			if early := time.Until(newExp); early > 0 {
				t.Fatalf("closed %s before the new token expired", early)
			}
		})
	}

	r := gqlToken(t, a.Addr(), signToken(t, "alice", far, nil), refresh, map[string]any{"t": signToken(t, "alice", far, nil)}, nil)
	if r.code() != "BAD_USER_INPUT" {
		t.Fatalf("refreshSession over HTTP: %+v, want BAD_USER_INPUT", r)
	}
}

// sseStream opens a graphql-sse (distinct connections) subscription and
// returns its events' data lines.
func sseStream(t *testing.T, addr, token, query string, vars map[string]any) <-chan string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE: %s", resp.Status)
	}
	lines := make(chan string, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				lines <- data
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return lines
}

// TestDisconnectUser: an administrator's disconnectUser, sent to replica
// B, closes the user's WebSockets on both replicas with 4403 and ends the
// user's event stream with a FORBIDDEN error, within a second; another
// user's socket stays. Without the admin claim it is FORBIDDEN, without a
// token UNAUTHENTICATED.
func TestDisconnectUser(t *testing.T) {
	cfgA := jwtConfig(t)
	cfgA.NATSListen = freeAddr(t)
	a := startTestApp(t, cfgA)
	cfgB := jwtConfig(t)
	cfgB.NATSURLs = []string{a.log.ClientURL()}
	b := startTestApp(t, cfgB)

	far := time.Now().Add(time.Hour)
	alice, bob := signToken(t, "alice", far, nil), signToken(t, "bob", far, nil)
	var created struct{ CreateRoom struct{ ID string } }
	gqlToken(t, a.Addr(), alice, `mutation { createRoom(name: "kick") { id } }`, nil, &created)
	room := created.CreateRoom.ID
	vars := map[string]any{"r": room}

	aliceOnA, aliceOnB, bobOnA := dialWS(t, a.Addr(), alice, false), dialWS(t, b.Addr(), alice, true), dialWS(t, a.Addr(), bob, false)
	for _, c := range []*wsClient{aliceOnA, aliceOnB, bobOnA} {
		c.start("s", postedQuery, vars)
		c.result("fence", `{ viewer { id } }`, nil)
	}
	stream := sseStream(t, b.Addr(), alice, postedQuery, vars)
	// The stream is live once it carries a post made after it opened.
	deadline := time.Now().Add(10 * time.Second)
	for live := false; !live; {
		gqlToken(t, a.Addr(), bob, `mutation($r: ID!) { postMessage(roomId: $r, text: "probe") { id } }`, vars, nil)
		select {
		case data := <-stream:
			live = strings.Contains(data, "probe")
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the SSE stream never delivered")
		}
	}

	const disconnect = `mutation($u: ID!) { disconnectUser(userId: $u) }`
	if r := gqlToken(t, b.Addr(), bob, disconnect, map[string]any{"u": "alice"}, nil); r.code() != "FORBIDDEN" {
		t.Fatalf("disconnectUser without the admin claim: %+v, want FORBIDDEN", r)
	}
	notAdmin := signToken(t, "carol", far, jwt.MapClaims{"admin": "true"}) // a string is not true
	if r := gqlToken(t, b.Addr(), notAdmin, disconnect, map[string]any{"u": "alice"}, nil); r.code() != "FORBIDDEN" {
		t.Fatalf("disconnectUser with admin \"true\": %+v, want FORBIDDEN", r)
	}
	if r := gqlToken(t, b.Addr(), "", disconnect, map[string]any{"u": "alice"}, nil); r.code() != "UNAUTHENTICATED" {
		t.Fatalf("disconnectUser anonymous: %+v, want UNAUTHENTICATED", r)
	}

	admin := signToken(t, "root", far, jwt.MapClaims{"admin": true})
	// An ID no user can have is the caller's mistake, not NATS's to refuse
	// (over 4 KiB, its notice would be) and the caller's to retry.
	for _, long := range []string{strings.Repeat("m", auth.MaxUserIDLength+1), strings.Repeat("m", 5000)} {
		if r := gqlToken(t, b.Addr(), admin, disconnect, map[string]any{"u": long}, nil); r.code() != "BAD_USER_INPUT" {
			t.Fatalf("disconnectUser of a %d-character ID: %+v, want BAD_USER_INPUT", len(long), r)
		}
	}
	start := time.Now()
	var out struct{ DisconnectUser bool }
	if r := gqlToken(t, b.Addr(), admin, disconnect, map[string]any{"u": "alice"}, &out); len(r.Errors) > 0 || !out.DisconnectUser {
		t.Fatalf("disconnectUser: %+v", r)
	}
	for name, c := range map[string]*wsClient{"alice on A": aliceOnA, "alice on B": aliceOnB} {
		if code := c.closeCode(2 * time.Second); code != 4403 {
			t.Errorf("%s closed with %d, want 4403", name, code)
		}
	}
	for ended := false; !ended; {
		select {
		case data, ok := <-stream:
			if !ok {
				t.Fatal("the SSE stream ended without an error")
			}
			ended = strings.Contains(data, "FORBIDDEN")
		case <-time.After(2 * time.Second):
			t.Fatal("the SSE stream got no FORBIDDEN error")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("disconnecting took %s, want within 1s", d)
	}
	// Bob's socket is untouched: it still delivers (after the probes).
	gqlToken(t, a.Addr(), bob, `mutation($r: ID!) { postMessage(roomId: $r, text: "still here") { id } }`, vars, nil)
	for {
		m := bobOnA.read(5 * time.Second)
		if strings.Contains(string(m.Payload), "still here") {
			break
		}
	}
}
