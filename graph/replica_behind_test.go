package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// heldLiveLog is a replica's event log whose live entries (the rooms'
// events as NATS republishes them) can be held back while hold is set: a
// replica a moment behind another, as any replica may be.
type heldLiveLog struct {
	chat.EventLog
	hold    atomic.Bool
	release chan struct{}
	once    sync.Once
}

func (l *heldLiveLog) NewLive(opts pubsub.LiveOptions) *pubsub.Live {
	if handle := opts.Handle; handle != nil {
		opts.Handle = func(e pubsub.Entry) {
			if l.hold.Load() {
				<-l.release
			}
			handle(e)
		}
	}
	return l.EventLog.NewLive(opts)
}

func (l *heldLiveLog) let() { l.once.Do(func() { close(l.release) }) }

// replicaAndLaggard starts two chat services over one embedded NATS: a, and
// b, whose live entries can be held back.
func replicaAndLaggard(t *testing.T) (a, b *chat.Service, held *heldLiveLog) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Partitions: 1, ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = first.Close() })
	second, err := pubsub.Open(ctx, pubsub.Options{URLs: []string{first.ClientURL()}, Partitions: first.Partitions(), Logger: quiet})
	if err != nil {
		t.Fatalf("open the second replica's event log: %v", err)
	}
	t.Cleanup(func() { _ = second.Close() })
	held = &heldLiveLog{EventLog: second, release: make(chan struct{})}
	a = runChat(t, first)
	b = runChat(t, held)
	t.Cleanup(held.let) // first: a held handler must not stall b's shutdown
	return a, b, held
}

// TestNewMemberResumesOnReplicaBehind shows that a user just added to a
// private room, who reads the room's page on one replica and then resumes
// after its resumeCursor on another that has not applied the addition yet,
// gets the subscription: schema.graphqls says of addMember that "the new
// member's subscriptions, resumes included, cover the room from this point
// on". roomExists used to check membership with CanSee, which reads only
// what the replica has applied, and refused with FORBIDDEN (which tells a
// client to stop) before WatchAfterFor, which looks again at the log, was
// called.
func TestNewMemberResumesOnReplicaBehind(t *testing.T) {
	a, b, held := replicaAndLaggard(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := chat.Actor{ID: "alice"}

	room, err := a.CreatePrivateRoom(ctx, alice, "plans")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PostMessage(ctx, alice, room.ID, "before bob", ""); err != nil {
		t.Fatal(err)
	}
	// b holds the room (alice reads it there), and has settled: the
	// re-read it schedules a second after a load is done.
	if _, err := b.Messages(ctx, room.ID, chat.Window{Last: 10}); err != nil {
		t.Fatal(err)
	}
	if sees, err := b.CanSee(ctx, "alice", room.ID); err != nil || !sees {
		t.Fatalf("alice on b: %v, %v", sees, err)
	}
	time.Sleep(1500 * time.Millisecond)

	held.hold.Store(true) // b is now a moment behind
	if _, err := a.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PostMessage(ctx, alice, room.ID, "welcome bob", ""); err != nil {
		t.Fatal(err)
	}
	// bob reads the room on a (which applied his addition: read-your-writes)...
	do := executor(t, a)
	resp := do("bob", fmt.Sprintf(`{ room(id: %q) { messages(last: 10) { nodes { text } resumeCursor } } }`, room.ID))
	if len(resp.Errors) > 0 {
		t.Fatalf("bob reads the room on a: %+v", resp.Errors)
	}
	var page struct {
		Room struct {
			Messages struct {
				Nodes        []struct{ Text string }
				ResumeCursor string
			}
		}
	}
	if err := json.Unmarshal(resp.Data, &page); err != nil {
		t.Fatal(err)
	}
	// ...and goes live after it on b, which has not applied it yet.
	rb := &Resolver{chat: b, epoch: time.Unix(0, 1).UnixNano()} // executor's epoch
	subCtx, stop := context.WithCancel(auth.NewContext(ctx, auth.Identity{UserID: "bob"}))
	defer stop()
	after := page.Room.Messages.ResumeCursor
	ch, err := rb.Subscription().MessagePosted(subCtx, room.ID, &after)
	if err != nil {
		held.let()
		t.Fatalf("bob, a member (his page on a showed %d messages), resumes after its resumeCursor on a replica "+
			"a moment behind: %v; want the subscription (chat.WatchAfterFor re-reads the room for a viewer it does not know yet)",
			len(page.Room.Messages.Nodes), err)
	}
	held.let()
	if _, err := a.PostMessage(ctx, alice, room.ID, "live", ""); err != nil {
		t.Fatal(err)
	}
	got, _ := receive(ch, func(m *chat.Message) string { return m.Text }, 2*time.Second)
	if len(got) != 1 || got[0] != "live" {
		t.Errorf("bob's resumed subscription got %q, want [live]", got)
	}
}
