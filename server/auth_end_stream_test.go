package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenExp is tok's exp claim.
func tokenExp(t *testing.T, tok string) time.Time {
	t.Helper()
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		t.Fatal(err)
	}
	return time.Unix(int64(claims["exp"].(float64)), 0)
}

// theOpenStream returns r's one open HTTP stream.
func theOpenStream(t *testing.T, r *replica) *httpStream {
	t.Helper()
	var st *httpStream
	waitFor(t, "the open stream", func() bool {
		r.server.sessions.mu.Lock()
		defer r.server.sessions.mu.Unlock()
		for s := range r.server.sessions.open {
			if h, ok := s.(*httpStream); ok {
				st = h
				return true
			}
		}
		return false
	})
	return st
}

func queuedItems(st *httpStream) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.queue)
}

// The same as TestNoEventAfterSocketEndIsDecided for an event stream
// (distinct connections mode, and multipart) whose token expires while its
// writer is held up by a client reading slowly: events posted after the
// expiry were queued and written before the UNAUTHENTICATED end. The
// stream is sealed at the expiry (httpStream.sealed).
func TestNoEventAfterStreamExpiry(t *testing.T) {
	for _, kind := range []string{"sse", "multipart"} {
		t.Run(kind, func(t *testing.T) {
			r, sign := slowJWTReplica(t)
			room := r.room("stream-after-" + kind)
			tok := sign("alice", 3*time.Second)
			exp := tokenExp(t, tok)
			h := http.Header{"Authorization": {"Bearer " + tok}}
			sse, mp := openPostedStream(t, r, kind, room, h, tinyReceiveBuffer, true)
			st := theOpenStream(t, r)
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			posted := 0
			for posted < 60 && queuedItems(st) < 3 {
				r.post(room, "bob", slowText(posted))
				posted++
			}
			if queuedItems(st) < 3 {
				t.Fatalf("the writer never got held up (%d posted)", posted)
			}
			// The expiry is seen (the keeper marks a parked stream
			// expired within a second); then more is posted.
			time.Sleep(time.Until(exp.Add(1500 * time.Millisecond)))
			for i := range 3 {
				r.post(room, "bob", "AFTER-"+string(rune('a'+i)))
			}
			time.Sleep(300 * time.Millisecond)
			if sse != nil {
				sse.resume()
			} else {
				mp.resume()
			}
			ended, after := expiredStreamEnd(t, sse, mp)
			if !ended {
				t.Errorf("the stream did not end with UNAUTHENTICATED")
			}
			if len(after) > 0 {
				t.Fatalf("%s: %d events posted 1.5 s after the token expired were delivered before the UNAUTHENTICATED end", kind, len(after))
			}
		})
	}
}

// TestNoEventAfterParkedStreamExpiry: an event posted just after a
// parked event stream's credentials expired (before the keeper's next look,
// up to a second later) does not reach it: the stream ends with
// UNAUTHENTICATED and nothing posted after the expiry, as a stream served
// by its request is sealed at the expiry itself.
func TestNoEventAfterParkedStreamExpiry(t *testing.T) {
	for _, kind := range []string{"sse", "multipart"} {
		t.Run(kind, func(t *testing.T) {
			r, sign := jwtReplica(t)
			room := r.room("stream-spent-" + kind)
			tok := sign("alice", 2*time.Second)
			exp := tokenExp(t, tok)
			h := http.Header{"Authorization": {"Bearer " + tok}}
			sse, mp := openPostedStream(t, r, kind, room, h, nil, false)
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			time.Sleep(time.Until(exp.Add(20 * time.Millisecond)))
			r.post(room, "bob", "AFTER-expiry")
			timeout := time.After(8 * time.Second)
			for ended := false; ; {
				var data string
				var ok bool
				select {
				case <-timeout:
					t.Fatal("the stream did not end")
				case ev, more := <-chanOrNil(sse):
					data, ok = ev.data, more
				case p, more := <-mpChanOrNil(mp):
					data, ok = p.body, more
				}
				if !ok {
					if !ended {
						t.Fatal("the stream ended without UNAUTHENTICATED")
					}
					return
				}
				ended = ended || strings.Contains(data, "UNAUTHENTICATED")
				if strings.Contains(data, "AFTER-expiry") {
					t.Fatalf("an event posted after the stream's credentials expired (at %v) reached it: %s", exp, data)
				}
			}
		})
	}
}

func chanOrNil(c *sseClient) <-chan sseEvent {
	if c == nil {
		return nil
	}
	return c.events
}

func mpChanOrNil(c *mpClient) <-chan mpPart {
	if c == nil {
		return nil
	}
	return c.parts
}

// openPostedStream opens an event stream of postedSub on room, of kind
// "sse" (its client is sse) or "multipart" (mp), with header, dialled
// with dial (nil: the default) and read from only once resumed if paused.
func openPostedStream(t *testing.T, r *replica, kind, room string, header http.Header,
	dial func(ctx context.Context, network, addr string) (net.Conn, error), paused bool,
) (sse *sseClient, mp *mpClient) {
	t.Helper()
	vars := map[string]any{"r": room}
	if kind == "sse" {
		sse, _, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: vars, header: header, dial: dial, paused: paused})
		if sse == nil {
			t.Fatal(body)
		}
		return sse, nil
	}
	mp, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: vars, header: header, dial: dial, paused: paused})
	if mp == nil {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	return nil, mp
}

// expiredStreamEnd reads sse's or mp's stream to its end, 8 s at most,
// and reports whether it ended with UNAUTHENTICATED and which of the
// events it delivered were posted after the expiry (their text starts
// "AFTER-").
func expiredStreamEnd(t *testing.T, sse *sseClient, mp *mpClient) (ended bool, after []string) {
	t.Helper()
	timeout := time.After(8 * time.Second)
	for {
		var body string
		var more bool
		if sse != nil {
			select {
			case ev, ok := <-sse.events:
				body, more = ev.data, ok
			case <-timeout:
				t.Fatal("the stream did not end")
			}
		} else {
			select {
			case p, ok := <-mp.parts:
				body, more = p.body, ok
			case <-timeout:
				t.Fatal("the stream did not end")
			}
		}
		if !more {
			return ended, after
		}
		ended = ended || strings.Contains(body, "UNAUTHENTICATED")
		if strings.Contains(body, "AFTER-") {
			after = append(after, body)
		}
	}
}
