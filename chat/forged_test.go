package chat

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/pubsub"
)

// forgeLive publishes, with core NATS, what the partition stream would
// republish for a stored post of roomID at seq with prev: anyone allowed to
// publish on the live subjects can send it, though the log never stored it.
func forgeLive(t *testing.T, log *pubsub.Log, roomID string, seq, prev uint64, text string) {
	t.Helper()
	nc, err := nats.Connect(log.ClientURL())
	if err != nil {
		t.Fatalf("connect to forge: %v", err)
	}
	defer nc.Close()
	e := Event{Type: MessagePosted, Actor: mallory, RoomID: roomID, MessageID: newMessageID(roomID), Text: text, Prev: prev}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	k := strconv.Itoa(log.PartitionOf(roomID))
	m := nats.NewMsg("herald-live.p" + k + "." + roomID + ".posts")
	m.Data = data
	m.Header.Set("Nats-Stream", "HERALD_P"+k)
	m.Header.Set("Nats-Subject", "herald-p"+k+"."+roomID+".posts")
	m.Header.Set("Nats-Sequence", strconv.FormatUint(seq, 10))
	m.Header.Set("Nats-Time-Stamp", time.Now().UTC().Format(time.RFC3339Nano))
	if err := nc.PublishMsg(m); err != nil {
		t.Fatalf("forge: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("forge: %v", err)
	}
}

var mallory = Actor{ID: "mallory", Name: "Mallory"}

// roomLast is the position the replica holds the room at.
func roomLast(t *testing.T, svc *Service, roomID string) uint64 {
	t.Helper()
	page, err := svc.Messages(context.Background(), roomID, Window{Last: 1})
	if err != nil {
		t.Fatal(err)
	}
	return page.Last
}

// nextText waits for w's next change and checks it is a post of text.
func nextText(t *testing.T, w *Watcher, what, text string) Change {
	t.Helper()
	c, err := next(w)
	if err != nil {
		t.Fatalf("%s: waiting for %q: %v", what, text, err)
	}
	if c.Type != MessagePosted || c.Message == nil || c.Message.Text != text {
		t.Fatalf("%s: got %+v (message %+v), want the post %q", what, c, c.Message, text)
	}
	return c
}

// TestForgedLiveEntryFromAnotherReplicaHeals: a forged live entry far
// ahead of the log puts a held room ahead of it. The room must not stay so:
// the next stored entry (another replica's post, which arrives at or below
// the forged position) makes the replica re-read the room from the log, and
// its subscribers, those that watched before the forgery and those after,
// get that post and the following ones.
func TestForgedLiveEntryFromAnotherReplicaHeals(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	room := mustRoom(t, a, "general")
	mustPost(t, a, room.ID, "before")
	ctx := context.Background()
	before, err := a.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	// The re-read a load schedules a second later would find the forgery
	// too; this test is about the replica finding it by itself.
	waitFor(t, "the re-read after the room's load", func() bool { return a.resyncer.idle() })
	forged := uint64(1) << 40
	forgeLive(t, first, room.ID, forged, roomLast(t, a, room.ID), "forged")
	if c := nextText(t, before, "the forged entry", "forged"); c.Seq != forged {
		t.Fatalf("the forged change is at %d, want %d", c.Seq, forged)
	}
	after, err := a.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()

	mustPost(t, b, room.ID, "from b")
	for _, w := range []*Watcher{before, after} {
		nextText(t, w, "a subscriber on the forged replica", "from b")
	}
	if last := roomLast(t, a, room.ID); last >= forged {
		t.Fatalf("the room is held at %d, still at the forged position", last)
	}
	mustPost(t, a, room.ID, "from a")
	mustPost(t, b, room.ID, "fence")
	for _, w := range []*Watcher{before, after} {
		// Nothing twice: the fence follows at once.
		nextText(t, w, "a subscriber after the heal", "from a")
		nextText(t, w, "a subscriber after the heal", "fence")
	}
}

// TestForgedLiveEntryHealsOnPropose: a replica whose room a forged entry
// put ahead of the log takes the next post anyway: the log refuses the
// append (the room's last is not the log's), the replica re-reads the room
// and posts after the log's last entry.
func TestForgedLiveEntryHealsOnPropose(t *testing.T) {
	log := openLog(t, pubsub.Options{})
	a := startService(t, log, Options{})
	room := mustRoom(t, a, "general")
	mustPost(t, a, room.ID, "before")
	w, err := a.Watch(context.Background(), RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	forged := uint64(1) << 40
	forgeLive(t, log, room.ID, forged, roomLast(t, a, room.ID), "forged")
	nextText(t, w, "the forged entry", "forged")

	m, err := a.PostMessage(context.Background(), alice, room.ID, "after", "")
	if err != nil {
		t.Fatalf("post after the forgery: %v", err)
	}
	if m.Seq >= forged {
		t.Fatalf("the post is at %d", m.Seq)
	}
	nextText(t, w, "the subscriber", "after")
	mustPost(t, a, room.ID, "fence")
	nextText(t, w, "the subscriber", "fence")
	page, err := a.Messages(context.Background(), room.ID, Window{Last: 10})
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range page.Items {
		texts = append(texts, m.Text)
	}
	if len(texts) != 3 || texts[0] != "before" || texts[1] != "after" {
		t.Fatalf("the room holds %q, want the log's [before after fence]", texts)
	}
}

// idle reports whether no re-read is scheduled.
func (r *resyncer) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.due) == 0
}
