package chat

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// heldAckLog is a replica's log whose acknowledgement of a stored post
// reaches the replica late (a slow network, or a NATS cluster whose
// republished entry reaches another replica before the publisher gets its
// ack): once armed, the next stored post reports its sequence on stored
// and returns only once release is closed.
type heldAckLog struct {
	*pubsub.Log
	armed   chan struct{} // closed: hold the next post
	stored  chan uint64
	release chan struct{}
}

func (l *heldAckLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	res, err := l.Log.AppendKeyed(ctx, key, rest, data, o)
	select {
	case <-l.armed:
	default:
		return res, err
	}
	if err == nil && rest == "posts" {
		select {
		case l.stored <- res.Seq:
			select {
			case <-l.release:
			case <-time.After(5 * time.Second):
			}
		default:
		}
	}
	return res, err
}

// A post without an idempotency key is stored, replica b delivers it, and
// its author deletes it there before replica a, which stored it, has heard
// back from the log. a answered CONFLICT ("idempotencyKey \"\" was used a
// moment ago for a post deleted since"): the checks meant for a
// de-duplicated retry ran on every post, and the client, told its post
// failed, posted it again. A post the log stored is answered with itself.
func TestStoredPostIsAnsweredAfterItsDeletionElsewhere(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	slow := &heldAckLog{Log: first, armed: make(chan struct{}), stored: make(chan uint64, 1), release: make(chan struct{})}
	a := startService(t, slow, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx := context.Background()
	room := mustRoom(t, a, "xrep-post-result")
	w, err := b.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	close(slow.armed)
	type answer struct {
		m   Message
		err error
	}
	done := make(chan answer, 1)
	go func() {
		m, err := a.PostMessage(ctx, alice, room.ID, "oops, wrong room", "")
		done <- answer{m, err}
	}()
	var seq uint64
	select {
	case seq = <-slow.stored:
	case <-time.After(5 * time.Second):
		t.Fatal("the post was not stored")
	}
	c := nextText(t, w, "b's subscriber", "oops, wrong room")
	if c.Seq != seq {
		t.Fatalf("b delivered seq %d, a stored %d", c.Seq, seq)
	}
	// The author, on another device served by b, deletes it at once.
	del, err := b.DeleteMessage(ctx, alice, c.Message.ID, 1)
	if err != nil {
		t.Fatalf("delete on b: %v", err)
	}
	waitFor(t, "a to apply the deletion", func() bool { return roomLast(t, a, room.ID) >= del.UpdatedSeq })
	close(slow.release)

	var got answer
	select {
	case got = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("postMessage did not answer")
	}
	if got.err != nil {
		t.Fatalf("postMessage of a post the log stored at %d (and b delivered) answered %v", seq, got.err)
	}
	if got.m.ID != c.Message.ID {
		t.Fatalf("postMessage answered message %s, the log stored %s", got.m.ID, c.Message.ID)
	}
}

// leftAckLog is a replica's log whose acknowledgement of a post never
// comes before the caller leaves: AppendKeyed stores the post, then waits
// for ctx to end, as a publish waiting for its ack does when the client
// goes.
type leftAckLog struct {
	*pubsub.Log
}

func (l *leftAckLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	if rest != "posts" {
		return l.Log.AppendKeyed(ctx, key, rest, data, o)
	}
	<-ctx.Done()
	return pubsub.AppendResult{}, ctx.Err()
}

// TestClientLeavingMidAppendIsNoWarning: a post whose client leaves while
// its event waits for the log's acknowledgement fails with the client's
// context; that is no fault of the log's, and any client can repeat it, so
// it is logged at debug level, not as a warning per post.
func TestClientLeavingMidAppendIsNoWarning(t *testing.T) {
	logs := &testrig.LogBuffer{}
	svc := startService(t, &leftAckLog{Log: openLog(t, pubsub.Options{})}, Options{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	room := mustRoom(t, svc, "left-mid-append")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := svc.PostMessage(ctx, alice, room.ID, "gone", ""); err == nil {
		t.Fatal("a post whose client left before its acknowledgement succeeded")
	}
	out := logs.String()
	if !strings.Contains(out, "appending an event failed") {
		t.Fatalf("the failure was not logged at all:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "appending an event failed") && !strings.Contains(line, "level=DEBUG") {
			t.Errorf("logged above debug: %s", line)
		}
	}
}
