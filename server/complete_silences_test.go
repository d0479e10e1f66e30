package server

import (
	"strings"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestCompleteSilencesQueuedLastFrames shows that the client's complete
// silences an operation that had ended by itself but whose last frames are
// still queued (a query's next and complete, runSingle; likewise a
// subscription's complete, streamEnded, and an error, denied): they are not
// sent after the complete, under an id the client may have reused at once.
// Such an operation had left the ops map, so onComplete found nothing to
// stop. Here the writer is stuck on a large answer the client does not
// read; a query is answered behind it, then completed, and its id reused:
// the client got the old query's result under the new one's id. (Frames
// already written cannot be recalled: they cross the complete on the wire.)
func TestCompleteSilencesQueuedLastFrames(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, nil, withSmallSendBuffers)
	big := r.room("big")
	text := strings.Repeat("x", 3000)
	for range 100 {
		r.post(big, "ann", text)
	}
	first := r.room("first")
	second := r.room("second")
	c := r.dialTinyWindow("ann")

	// A large answer keeps the socket's writer busy while the client does
	// not read.
	c.subscribe("subscribe", "big", `query($r: ID!) { room(id: $r) { messages(last: 100) { nodes { text } } } }`, map[string]any{"r": big})
	r.waitEnding("big") // answered
	r.waitWriterStuck() // and the writer is stuck on it: "q" cannot overtake it
	nameQuery := `query($r: ID!) { room(id: $r) { name } }`
	c.subscribe("subscribe", "q", nameQuery, map[string]any{"r": first})
	r.waitEnding("q") // answered; its frames wait behind "big"
	c.send(map[string]any{"type": "complete", "id": "q"})
	c.subscribe("subscribe", "q", nameQuery, map[string]any{"r": second})

	for {
		f := c.next()
		if f.ID != "q" {
			continue
		}
		if f.Type != "next" {
			t.Fatalf("first frame for the reused id q: %s", f.raw)
		}
		var got struct{ Room struct{ Name string } }
		f.data(t, &got)
		if got.Room.Name != "second" {
			t.Fatalf("the client completed q, then reused q for room \"second\"; the first result under q is %s (the completed operation's)", f.raw)
		}
		return
	}
}
