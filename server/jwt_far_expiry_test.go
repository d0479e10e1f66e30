package server

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFarFutureExpKeepsSocketOpen: a token whose exp lies after
// the year 2262 (the common "never" value 9999999999 is in 2286) is
// accepted, so its socket must stay open like any other with a valid
// token. time.Time.UnixNano is undefined (it wraps negative) past 2262:
// stored as it was, the expiry was in the past and the keeper closed the socket with
// 4403 "the token has expired" within a second of the ack.
func TestFarFutureExpKeepsSocketOpen(t *testing.T) {
	r, sign := jwtReplicaExp(t)
	room := r.room("far-future")
	c := r.dial(subprotocolTransportWS)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + sign("alice", 9999999999)}})
	c.expectType("connection_ack")
	c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		f, err := c.read(time.Until(deadline))
		if err == nil {
			if f.Type == "error" || f.Type == "complete" {
				t.Fatalf("subscription refused with a token valid until 2286: %s", f.raw)
			}
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			t.Fatalf("socket with a token valid until 2286 closed with %d %q", ce.Code, ce.Text)
		}
		break // read deadline: still open, as it should be
	}
}

// TestFarFutureExpKeepsStreamOpen: the same for a subscription's
// event stream once parked (streamconn.go stores ExpiresAt.UnixNano()):
// a token valid until 2286 ends the stream at once with "the token has
// expired".
func TestFarFutureExpKeepsStreamOpen(t *testing.T) {
	r, sign := jwtReplicaExp(t)
	room := r.room("far-future-sse")
	conn, err := net.DialTimeout("tcp", r.http.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	body, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": room}})
	req := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
		acceptSSE, sign("alice", 9999999999), len(body), body)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	_ = conn.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
	got, err := io.ReadAll(resp.Body)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stream with a token valid until 2286 ended (%v): %q", err, got)
	}
	if strings.Contains(string(got), "expired") {
		t.Fatalf("stream with a token valid until 2286 got %q", got)
	}
}
