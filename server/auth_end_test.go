package server

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// slowJWTReplica is a jwt replica whose accepted connections have small
// send buffers, so that a client that does not read holds a write up.
func slowJWTReplica(t *testing.T) (*replica, func(sub string, ttl time.Duration) string) {
	t.Helper()
	secret := []byte(strings.Repeat("s", 32))
	authn, err := auth.NewJWT(context.Background(), auth.JWTOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.Authenticator = authn
		o.QueueMessages = 1024
		o.QueueBytes = 16 << 20
	}, withSmallSendBuffers)
	return r, func(sub string, ttl time.Duration) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// framesQueuedOn is how many frames wait in c's queue.
func framesQueuedOn(c *wsConn) int {
	c.queue.mu.Lock()
	defer c.queue.mu.Unlock()
	return len(c.queue.items)
}

// Once a socket's end is decided (4403: its user disconnected by an
// administrator, or its token expired), an event posted afterwards does not
// reach it. A socket whose writer was held up by a client reading slowly
// when the 4403 was chosen went on taking events into its queue until its
// writer got to the close frame, and wrote them all before it: the
// disconnected (or expired) client read events posted after it was cut
// off, for as long as it kept one write pending (up to WriteTimeout,
// 10 s). The queue takes no event once a close is chosen (outQueue.seal).
func TestNoEventAfterSocketEndIsDecided(t *testing.T) {
	for _, why := range []string{"disconnect", "expiry"} {
		t.Run(why, func(t *testing.T) {
			r, sign := slowJWTReplica(t)
			room := r.room("after-" + why)
			ttl := time.Hour
			if why == "expiry" {
				ttl = 3 * time.Second
			}
			d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second, NetDialContext: tinyReceiveBuffer}
			conn, _, err := d.Dial(r.wsURL, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			c := &wsClient{t: t, conn: conn}
			c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + sign("alice", ttl)}})
			c.expectType("connection_ack")
			sc := scheduledConn(t, r)
			c.subscribe("subscribe", "1", postedSub, map[string]any{"r": room})
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })

			// The client reads nothing now: a few events fill the socket's
			// buffers, the writer is held in a write, the rest wait queued.
			posted := 0
			for posted < 40 && framesQueuedOn(sc) < 3 {
				r.post(room, "bob", slowText(posted))
				posted++
			}
			if framesQueuedOn(sc) < 3 {
				t.Fatalf("the writer never got held up (%d posted)", posted)
			}
			switch why {
			case "disconnect":
				if n := r.server.DisconnectUser("alice"); n != 1 {
					t.Fatalf("DisconnectUser = %d", n)
				}
			case "expiry":
				waitFor(t, "the keeper to close the expired socket", sc.isClosing)
			}
			if !sc.isClosing() {
				t.Fatal("no close chosen")
			}
			// Posted after the socket's end was decided.
			for i := range 3 {
				r.post(room, "bob", "AFTER-"+string(rune('a'+i)))
			}
			time.Sleep(300 * time.Millisecond)

			var after []string
			var code int
			for {
				_ = conn.SetReadDeadline(time.Now().Add(8 * time.Second))
				_, data, err := conn.ReadMessage()
				if err != nil {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						code = ce.Code
					} else {
						t.Logf("read ended: %v", err)
					}
					break
				}
				var f struct {
					Type    string
					Payload json.RawMessage
				}
				_ = json.Unmarshal(data, &f)
				if f.Type == "next" && strings.Contains(string(f.Payload), "AFTER-") {
					var p struct {
						Data struct{ MessagePosted struct{ Text string } }
					}
					_ = json.Unmarshal(f.Payload, &p)
					after = append(after, p.Data.MessagePosted.Text)
				}
			}
			if code != closeForbidden {
				t.Errorf("close code %d, want 4403", code)
			}
			if len(after) > 0 {
				t.Fatalf("%s: the socket was closed with 4403 after delivering %d events posted once its end was decided: %v", why, len(after), after)
			}
		})
	}
}
