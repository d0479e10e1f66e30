package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// Pacing of TestResumeHandsOverAtItsClientsPace: the live stream posts
// handoverPosts messages of ~2 KB, one per handoverPostEvery (~200 KB/s),
// while its clients read about five times as fast (~1 MB/s).
const (
	handoverBacklog   = 150
	handoverPosts     = 20
	handoverPostEvery = 10 * time.Millisecond
	handoverReadEvery = 2 * time.Millisecond
	// handoverReadTimeout bounds the wait for one event: the pace above
	// is what is measured, not this, which only ends a test whose event
	// never comes. A post takes far longer than its pace under -race on a
	// loaded machine: 5 s ran out once in a full run beside other tests.
	handoverReadTimeout = 20 * time.Second
)

// TestResumeHandsOverAtItsClientsPace: the live results that arrive while
// a resumed subscriber's replay is paced to its client, which the handoff
// holds (up to QueueMessages, here far more than the 32 KiB queue takes),
// reach the client at its pace too (sharedExecutions.catchUp), in order
// after the backlog and without a gap or a duplicate. Written all at once
// when the replay reached them, they overflowed the queue and closed the
// client as a slow consumer at the end of every replay, though the live
// stream never outran it: a subscriber that did not resume, reading at the
// same pace, keeps up with the same stream. Over a WebSocket and an event
// stream.
func TestResumeHandsOverAtItsClientsPace(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueBytes = paceBytes // QueueMessages stays 1024
	}, withSmallSendBuffers) // what the client does not read stays in the queue
	for _, tc := range []struct {
		name string
		// subscribe subscribes with a client that reads one event per
		// handoverReadEvery; next returns the text of its next event, or
		// why there is none.
		subscribe func(t *testing.T, r *replica, vars map[string]any) (next func() (string, error))
	}{
		{"websocket", func(t *testing.T, r *replica, vars map[string]any) func() (string, error) {
			c := r.dialTinyWindow("reader")
			c.subscribe("subscribe", "s", postedSub, vars)
			return func() (string, error) {
				for {
					f, err := c.read(handoverReadTimeout)
					if err != nil {
						return "", err
					}
					if f.keepalive() {
						continue
					}
					if f.Type != "next" {
						return "", fmt.Errorf("%s", f.raw)
					}
					var got struct{ MessagePosted struct{ Text string } }
					if err := f.decodeData(&got); err != nil {
						return "", err
					}
					time.Sleep(handoverReadEvery)
					return got.MessagePosted.Text, nil
				}
			}
		}},
		{"event stream", func(t *testing.T, r *replica, vars map[string]any) func() (string, error) {
			c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: vars, dial: pacedReads})
			if c == nil {
				t.Fatal(body)
			}
			return func() (string, error) { return nextPostedText(c) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.forTest(t)
			waitFor(t, "the executions of the cases before", func() bool { return r.server.ws.execs.count() == 0 })
			room := r.room("handover " + tc.name)
			var cursor string
			for i := range handoverBacklog {
				m := r.post(room, "poster", backlogText(i))
				if i == 0 {
					cursor = graphCursor(t, r, m)
				}
			}
			slowBefore := testutil.ToFloat64(r.server.ws.metrics.slowCloses)
			live := tc.subscribe(t, r, map[string]any{"r": room})
			resumed := tc.subscribe(t, r, map[string]any{"r": room, "after": cursor})
			waitFor(t, "the live execution and the replay", func() bool { return r.server.ws.execs.count() == 2 })

			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() {
				for i := range handoverPosts {
					if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, room, liveText(i), ""); err != nil {
						t.Errorf("post %d: %v", i, err)
						return
					}
					time.Sleep(handoverPostEvery)
				}
			})
			read := func(next func() (string, error), want int) (texts []string, err error) {
				for len(texts) < want {
					text, err := next()
					if err != nil {
						return texts, err
					}
					texts = append(texts, text)
				}
				return texts, nil
			}
			var liveTexts []string
			var liveErr error
			wg.Go(func() { liveTexts, liveErr = read(live, handoverPosts) })
			texts, err := read(resumed, handoverBacklog-1+handoverPosts)
			wg.Wait()
			slow := testutil.ToFloat64(r.server.ws.metrics.slowCloses) - slowBefore
			if liveErr != nil {
				t.Fatalf("the subscriber that did not resume, after %d of %d events: %v", len(liveTexts), handoverPosts, liveErr)
			}
			if err != nil {
				t.Fatalf("the resumed subscriber, after %d of %d events (%v slow-consumer closes): %v",
					len(texts), handoverBacklog-1+handoverPosts, slow, err)
			}
			for i, text := range texts {
				want := liveText(i - (handoverBacklog - 1))
				if i < handoverBacklog-1 {
					want = backlogText(i + 1)
				}
				if text != want {
					t.Fatalf("event %d is %.10q, want %.10q", i, text, want)
				}
			}
			if slow != 0 {
				t.Fatalf("%v slow-consumer closes, want none", slow)
			}
		})
	}
}

func liveText(i int) string { return fmt.Sprintf("live %02d %s", i, strings.Repeat("y", 1990)) }

// pacedReads dials as tinyReceiveBuffer does, and reads at most 2 KiB at a
// time, one read per handoverReadEvery: an event stream's client that
// reads ~1 MB/s, whatever its reader buffers.
func pacedReads(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := tinyReceiveBuffer(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return pacedConn{conn}, nil
}

type pacedConn struct{ net.Conn }

func (c pacedConn) Read(b []byte) (int, error) {
	time.Sleep(handoverReadEvery)
	return c.Conn.Read(b[:min(len(b), 2<<10)])
}

// nextPostedText is the text of c's next messagePosted result, or why
// there is none (the stream ended, or ended the subscription with an
// error); it may be called off the test's goroutine.
func nextPostedText(c *sseClient) (string, error) {
	timer := time.NewTimer(handoverReadTimeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return "", fmt.Errorf("the stream ended: %v", c.err)
			}
			if ev.comment {
				continue
			}
			var body struct {
				Data struct {
					MessagePosted struct{ Text string }
				}
				Errors json.RawMessage
			}
			if ev.event != "next" {
				return "", fmt.Errorf("event %q: %s", ev.event, ev.data)
			}
			if err := json.Unmarshal([]byte(ev.data), &body); err != nil {
				return "", fmt.Errorf("next event's data %q: %w", ev.data, err)
			}
			if len(body.Errors) > 0 {
				return "", fmt.Errorf("errors: %s", body.Errors)
			}
			return body.Data.MessagePosted.Text, nil
		case <-timer.C:
			return "", errors.New("no event within 5s")
		}
	}
}
