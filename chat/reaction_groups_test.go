package chat

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// groupEmoji is the i-th of many distinct emoji a test reacts with.
func groupEmoji(i int) string { return "e" + strconv.Itoa(i) }

// reactedGroups is alice reacting to msg with n distinct emoji, each a
// group of its own.
func reactedGroups(msg string, n int) []Event {
	events := make([]Event, n)
	for i := range events {
		events[i] = reacted(alice, msg, groupEmoji(i))
	}
	return events
}

// TestReactionGroupsCap: a reaction that would give a message more than
// MaxReactionGroups distinct emoji is refused when proposed, with
// BAD_USER_INPUT, in a room of any history; joining a group, or taking
// one's own reaction back, always works, and so does a new emoji once a
// group is gone. Applying judges none of it: a log holding more groups
// (stored before the cap, or by a replica of an earlier version) loads as
// it did, and its messages keep every group.
func TestReactionGroupsCap(t *testing.T) {
	const newEmoji = "🆕"
	atCap := reactedGroups(msgA1, MaxReactionGroups)
	overCap := reactedGroups(msgA1, MaxReactionGroups+5)
	tests := []struct {
		name     string
		events   []Event // applied after the post; the last one is also proposed
		proposed Code    // what proposing the last one is judged ("" = accepted)
		groups   int     // the message's groups once all are applied
	}{
		{name: "a new emoji below the cap",
			events: append(reactedGroups(msgA1, MaxReactionGroups-1), reacted(bob, msgA1, newEmoji)), groups: MaxReactionGroups},
		{name: "a new emoji at the cap", proposed: CodeBadUserInput,
			events: append(slices.Clone(atCap), reacted(bob, msgA1, newEmoji)), groups: MaxReactionGroups + 1},
		{name: "joining a reaction at the cap",
			events: append(slices.Clone(atCap), reacted(bob, msgA1, groupEmoji(0))), groups: MaxReactionGroups},
		{name: "taking one's own reaction back at the cap",
			events: append(slices.Clone(atCap), reacted(alice, msgA1, groupEmoji(3))), groups: MaxReactionGroups - 1},
		{name: "a new emoji once a group is gone",
			events: append(slices.Clone(atCap), reacted(alice, msgA1, groupEmoji(3)), reacted(bob, msgA1, newEmoji)), groups: MaxReactionGroups},
		{name: "a new emoji on a message stored over the cap", proposed: CodeBadUserInput,
			events: append(slices.Clone(overCap), reacted(bob, msgA1, newEmoji)), groups: MaxReactionGroups + 6},
		{name: "joining a reaction over the cap",
			events: append(slices.Clone(overCap), reacted(bob, msgA1, groupEmoji(MaxReactionGroups+4))), groups: MaxReactionGroups + 5},
		{name: "taking one's own reaction back over the cap",
			events: append(slices.Clone(overCap), reacted(alice, msgA1, groupEmoji(0))), groups: MaxReactionGroups + 4},
	}
	for _, history := range []int{0, 1000} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s, history %d", tc.name, history), func(t *testing.T) {
				room := Room{ID: roomA, Name: "a", CreatedBy: alice}
				events := append([]Event{posted(alice, roomA, msgA1, "hi")}, tc.events...)
				proposing := newRoomState(room, history)
				if errs := applyAll(proposing, events[:len(events)-1]); slices.ContainsFunc(errs, func(e *Error) bool { return e != nil }) {
					t.Fatalf("setting up: %v", errs)
				}
				last := events[len(events)-1]
				last.Prev = proposing.last
				err := proposing.judgeProposal(last)
				if got := codeOf(err); got != tc.proposed {
					t.Fatalf("proposing: %q (%v), want %q", got, err, tc.proposed)
				}
				if err != nil && !strings.Contains(err.Message, strconv.Itoa(MaxReactionGroups)) {
					t.Errorf("refusal %q does not name the limit", err.Message)
				}
				applying := newRoomState(room, history)
				if errs := applyAll(applying, events); slices.ContainsFunc(errs, func(e *Error) bool { return e != nil }) {
					t.Fatalf("applying (as a replica replaying the log): %v", errs)
				}
				if got := len(applying.byID[msgA1].reactions); got != tc.groups {
					t.Fatalf("applied: %d groups, want %d", got, tc.groups)
				}
			})
		}
	}
}

// TestReactionGroupsOverCapOnReplay: a log that holds a message with more
// than MaxReactionGroups groups (as a replica of an earlier version could
// have stored) is loaded by every replica with all of them, alike: the
// replica that held the room as they came and one that reads it afresh.
// Proposals on it add no group, and refuse before appending, but join and
// take back the ones it has.
func TestReactionGroupsOverCapOnReplay(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := mustRoom(t, a, "reactions")
	msg := mustPost(t, a, room.ID, "vote with an emoji")
	const stored = MaxReactionGroups + 3
	last := roomLast(t, a, room.ID)
	for _, e := range reactedGroups(msg.ID, stored) {
		e.Prev = last
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		res, err := first.AppendKeyed(ctx, e.RoomID, e.rest(), data, pubsub.AppendOptions{ExpectLast: last})
		if err != nil {
			t.Fatalf("storing an earlier version's reaction: %v", err)
		}
		last = res.Seq
	}
	groups := func(svc *Service) []Reaction {
		m, ok, err := svc.Message(ctx, alice.ID, msg.ID)
		if err != nil || !ok {
			t.Fatalf("read message %s: %v, %v", msg.ID, ok, err)
		}
		return m.Reactions
	}
	waitFor(t, "replica a to apply the stored reactions", func() bool { return len(groups(a)) == stored })

	log := &countingLog{Log: openReplicaLog(t, first, pubsub.Options{})}
	b := startService(t, log, Options{})
	if got := groups(b); len(got) != stored || !reflect.DeepEqual(got, groups(a)) {
		t.Fatalf("replica b loaded %d groups %v, want replica a's %d: %v", len(got), got, stored, groups(a))
	}

	before := log.appends.Load()
	_, err := b.React(ctx, bob, msg.ID, "🆕")
	wantCode(t, err, CodeBadUserInput)
	if log.appends.Load() != before {
		t.Fatal("a reaction the cap refuses was appended to the log")
	}
	if _, err := b.React(ctx, bob, msg.ID, groupEmoji(0)); err != nil {
		t.Fatalf("joining a reaction over the cap: %v", err)
	}
	if _, err := b.React(ctx, alice, msg.ID, groupEmoji(1)); err != nil {
		t.Fatalf("taking one's own reaction back over the cap: %v", err)
	}
	got := groups(b)
	if len(got) != stored-1 || got[0].Emoji != groupEmoji(0) || len(got[0].UserIDs) != 2 {
		t.Fatalf("after joining one group and leaving another: %v", got)
	}
	waitFor(t, "replica a to agree", func() bool { return reflect.DeepEqual(groups(a), got) })
}
