package server

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// forgeLivePost publishes on a room's live subject, with core NATS, what
// the partition stream would republish for a post at seq after prev, which
// the log never stored: the room applies it and is ahead of the log until
// the next proposal re-reads it (chat's healAhead, reloadRoom).
func forgeLivePost(t *testing.T, r *replica, roomID string, seq, prev uint64, text string) {
	t.Helper()
	nc, err := nats.Connect(r.log.ClientURL())
	if err != nil {
		t.Fatalf("connect to forge: %v", err)
	}
	defer nc.Close()
	e := chat.Event{Type: chat.MessagePosted, Actor: chat.Actor{ID: "mallory", Name: "Mallory"}, RoomID: roomID,
		MessageID: roomID + "_mforgedaaaaaaaaaaaaaaa", Text: text, Prev: prev}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	k := strconv.Itoa(r.log.PartitionOf(roomID))
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

func roomLast(t *testing.T, r *replica, roomID string) uint64 {
	t.Helper()
	page, err := r.chat.Messages(context.Background(), roomID, chat.Window{Last: 1})
	if err != nil {
		t.Fatal(err)
	}
	return page.Last
}

// TestResumedSubscriberAfterRoomReread: a room that applied a live
// entry the log does not hold (forged, or lost by the log) is re-read from
// the log at the next post, and its watchers go on from the log's order,
// at positions below the one they saw last (chat's reloadRoom). A plain
// subscriber gets every post after the heal. A subscriber that resumed
// while the room was ahead, and whose replay wrote the position the log
// does not hold, must get them too: the handoff skipped every live result
// at or below that position, so it got nothing more, for good.
func TestResumedSubscriberAfterRoomReread(t *testing.T) {
	for _, tc := range []struct {
		name string
		// liveBefore: a plain subscriber's execution runs before the
		// forgery (the resumed one joins it); otherwise the resumed
		// subscriber starts the shared execution after it.
		liveBefore bool
	}{
		{"shared execution started before the forgery", true},
		{"shared execution started after the forgery", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplicaOver(t, pubsub.Options{ListenAddr: "127.0.0.1:0"}, chat.Options{}, nil, nil)
			room := r.room("reload " + tc.name)
			cursor := graphCursor(t, r, r.post(room, "poster", "m0"))
			r.post(room, "poster", "m1")
			var plain *wsClient
			if tc.liveBefore {
				plain = r.dialTransport("plain")
				plain.subscribe("subscribe", "p", postedSub, map[string]any{"r": room})
				waitFor(t, "the plain subscription", func() bool { return r.members() == 1 })
			}
			forged := uint64(1) << 40
			forgeLivePost(t, r, room, forged, roomLast(t, r, room), "forged")
			waitFor(t, "the room to apply the forged entry", func() bool { return roomLast(t, r, room) == forged })
			if plain != nil {
				if got := readEvents(t, plain, "p", 1); got[0].text != "forged" {
					t.Fatalf("plain subscriber got %q, want the forged post", got[0].text)
				}
			}

			resumed := r.dialTransport("resumer")
			resumed.subscribe("subscribe", "r", postedSub, map[string]any{"r": room, "after": cursor})
			for i, want := range []string{"m1", "forged"} {
				if got := readEvents(t, resumed, "r", 1); got[0].text != want {
					t.Fatalf("replayed event %d is %q, want %q", i, got[0].text, want)
				}
			}
			if plain == nil {
				plain = r.dialTransport("plain")
				plain.subscribe("subscribe", "p", postedSub, map[string]any{"r": room})
				waitFor(t, "the plain subscription", func() bool { return r.members() == 3 })
			}

			// The next post finds the room ahead of the log, re-reads it,
			// and is stored after m1: the room goes on from the log.
			const after = 4
			for i := range after {
				r.post(room, "poster", fmt.Sprintf("after %d", i))
			}
			if last := roomLast(t, r, room); last >= forged {
				t.Fatalf("the room is still at the forged position %d", last)
			}
			for i, e := range readEvents(t, plain, "p", after) {
				if want := fmt.Sprintf("after %d", i); e.text != want {
					t.Fatalf("plain subscriber: event %d is %q, want %q", i, e.text, want)
				}
			}
			got, err := collectEvents(resumed, "r", after)
			var texts []string
			for _, e := range got {
				texts = append(texts, e.text)
			}
			if err != nil {
				t.Fatalf("resumed subscriber got %q of the %d posts after the room's re-read, which a plain subscriber got: %v",
					texts, after, err)
			}
			for i, text := range texts {
				if want := fmt.Sprintf("after %d", i); text != want {
					t.Fatalf("resumed subscriber: event %d is %q, want %q (all: %q)", i, text, want, texts)
				}
			}
		})
	}
}
