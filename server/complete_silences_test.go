package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestReusedIDOfAnEndingOperationGetsOnlyItsOwnFrames: an operation that
// ended by itself, its last frames still queued (a query's result and
// complete, runSingle; likewise a subscription's complete, streamEnded,
// and an error, denied), has left the ops map. Its id may be reused at
// once, and nothing more may be sent for it then, or the client takes the
// old result for the new operation's:
//   - on graphql-transport-ws, after the client's complete: onComplete
//     silences it (wsConn.ending);
//   - on the legacy protocol, by a start without a stop: the id is in use
//     (wsMachine.idInUse stops what runs under it), the ending one too.
//
// Here the writer is stuck on a large answer the client does not read, a
// query is answered behind it, and its id reused. (Frames already written
// cannot be recalled: they cross the complete on the wire.)
func TestReusedIDOfAnEndingOperationGetsOnlyItsOwnFrames(t *testing.T) {
	for _, tt := range []struct {
		name, subprotocol, start, result string
		complete                         bool // the client completes q before reusing its id
	}{
		{"graphql-transport-ws, after complete", subprotocolTransportWS, "subscribe", "next", true},
		{"legacy, a start over it", subprotocolLegacy, "start", "data", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The writer stays stuck until the client reads, after the
			// steps below: on a loaded machine they may take seconds, and
			// the default WriteTimeout (10 s) would cut the socket first.
			r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.WriteTimeout = time.Minute }, withSmallSendBuffers)
			big := r.room("big")
			text := strings.Repeat("x", 3000)
			for range 100 {
				r.post(big, "ann", text)
			}
			first := r.room("first")
			second := r.room("second")
			c := r.dialTinyWindowSpeaking(tt.subprotocol, "ann")

			// A large answer keeps the socket's writer busy while the
			// client does not read.
			c.subscribe(tt.start, "big", `query($r: ID!) { room(id: $r) { messages(last: 100) { nodes { text } } } }`, map[string]any{"r": big})
			r.waitEnding("big") // answered
			r.waitWriterStuck() // and the writer is stuck on it: "q" cannot overtake it
			nameQuery := `query($r: ID!) { room(id: $r) { name } }`
			c.subscribe(tt.start, "q", nameQuery, map[string]any{"r": first})
			r.waitEnding("q") // answered; its frames wait behind "big"
			if tt.complete {
				c.send(map[string]any{"type": "complete", "id": "q"})
			}
			c.subscribe(tt.start, "q", nameQuery, map[string]any{"r": second})

			for {
				f := c.next()
				if f.ID != "q" {
					continue
				}
				if f.Type != tt.result {
					t.Fatalf("first frame for the reused id q: %s, want the new query's %s", f.raw, tt.result)
				}
				var got struct{ Room struct{ Name string } }
				f.data(t, &got)
				if got.Room.Name != "second" {
					t.Fatalf("q reused for room \"second\"; the first result under q is %s (the operation it replaced)", f.raw)
				}
				return
			}
		})
	}
}

// waitEnding waits up to 10 s until r's one open socket holds operation
// id as ended by itself with its last frames still queued.
func (r *replica) waitEnding(id string) {
	r.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		conns := r.openWSConns()
		if len(conns) != 1 {
			continue
		}
		c := conns[0]
		c.mu.Lock()
		ending := c.ending[id] != nil
		c.mu.Unlock()
		if ending {
			return
		}
	}
	r.t.Fatalf("operation %q did not end with its last frames queued within 10 s", id)
}

// waitWriterStuck waits up to 10 s until r's one open socket's writer has
// taken everything queued but completes and is still writing it.
// waitEnding alone does not say that the writer is stuck: an operation is
// ending from the moment its answer is ready, before that answer is encoded
// and queued, and on a loaded machine a query started after it may be
// answered and written first. A complete may stay queued: runSingle queues
// the answer and its complete one at a time, and a writer that started in
// between took the answer alone and is stuck on it, the complete behind it,
// where it is behind the answer all the same.
func (r *replica) waitWriterStuck() {
	r.t.Helper()
	var seen string // the last state looked at, for the failure
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		conns := r.openWSConns()
		if len(conns) != 1 {
			seen = fmt.Sprintf("%d open sockets", len(conns))
			continue
		}
		q := conns[0].queue
		q.mu.Lock()
		writing, queued, completes := q.writing, len(q.items), 0
		for _, it := range q.items {
			if it.kind == frameComplete {
				completes++
			}
		}
		q.mu.Unlock()
		if writing && queued == completes {
			return
		}
		seen = fmt.Sprintf("writing %t with %d frames queued (%d completes)", writing, queued, completes)
	}
	r.t.Fatalf("the socket's writer did not take its queue and stay writing within 10 s; last seen: %s", seen)
}
