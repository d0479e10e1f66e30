package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// longEmoji is the i-th distinct emoji of the longest size a reaction may
// have (chat.MaxEmojiLength bytes): visible characters only, accepted.
func longEmoji(i int) string { return fmt.Sprintf("r%0*d", chat.MaxEmojiLength-1, i) }

// fillReactionGroups gives message msgID chat.MaxReactionGroups groups of
// the longest emoji, one reaction by alice in each.
func fillReactionGroups(t *testing.T, r *replica, msgID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range chat.MaxReactionGroups {
		if _, err := r.chat.React(ctx, chat.Actor{ID: "alice"}, msgID, longEmoji(i)); err != nil {
			t.Fatalf("react %d: %v", i, err)
		}
	}
}

// TestReactEventIsBounded: every change of a message sends each roomEvents
// subscriber the whole message with its reaction groups, so one react
// mutation must not cost them more than the largest message text does. A
// message holds at most chat.MaxReactionGroups distinct emoji: a react
// adding one more is refused with BAD_USER_INPUT, while joining a group or
// taking one's reaction back still works, and a new emoji does once a
// group is gone.
func TestReactEventIsBounded(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxComplexity = 10000 // cmd/herald's defaults
		o.Limits.MaxDepth = 15
	})
	roomID := r.room("reactions")
	msg := r.post(roomID, "alice", "hi")
	fillReactionGroups(t, r, msg.ID)

	bob := r.dialTransport("bob")
	bob.subscribe("subscribe", "1", `subscription($r: ID!) { roomEvents(roomId: $r) { kind message { id text version reactions { emoji count } } cursor } }`,
		map[string]any{"r": roomID})
	waitFor(t, "bob's subscription to start", func() bool { return r.members() == 1 })

	// What one mutation of any text may cost a subscriber: a message of
	// --max-text-length characters of 4 bytes each, plus room for the
	// event's other fields.
	const textBound = chat.MaxTextLength*4 + 1024
	const react = `mutation($m: ID!, $e: String!) { react(messageId: $m, emoji: $e) { version } }`
	for _, step := range []struct {
		name, user, emoji string
		code              string // "" = accepted
		groups            int    // the message's groups after it
	}{
		{"a new emoji at the cap", "alice", "ok", "BAD_USER_INPUT", chat.MaxReactionGroups},
		{"another user's new emoji at the cap", "carol", longEmoji(chat.MaxReactionGroups), "BAD_USER_INPUT", chat.MaxReactionGroups},
		{"joining a reaction at the cap", "carol", longEmoji(0), "", chat.MaxReactionGroups},
		{"taking one's reaction back", "alice", longEmoji(1), "", chat.MaxReactionGroups - 1},
		{"a new emoji once a group is gone", "carol", "ok", "", chat.MaxReactionGroups},
		{"a new emoji at the cap again", "carol", "🆕", "BAD_USER_INPUT", chat.MaxReactionGroups},
	} {
		status, _, body := r.graphqlPost(step.user, react, map[string]any{"m": msg.ID, "e": step.emoji}, nil)
		if got := errorCode(body); status != http.StatusOK || got != step.code {
			t.Fatalf("%s: %d, code %q, want %q: %v", step.name, status, got, step.code, body)
		}
		if step.code != "" {
			continue // refused before the log: no event (the next step's is the next frame)
		}
		f := bob.next()
		if f.Type != "next" {
			t.Fatalf("%s: bob got %s, want the REACTIONS_CHANGED event", step.name, f.raw)
		}
		if groups := strings.Count(f.raw, `"emoji"`); groups != step.groups {
			t.Fatalf("%s: bob's event holds %d groups, want %d: %s", step.name, groups, step.groups, f.raw)
		}
		if len(f.raw) > textBound {
			t.Fatalf("%s: one react mutation cost each subscriber a %d-byte event, more than the %d bytes the largest message text does",
				step.name, len(f.raw), textBound)
		}
		t.Logf("%s: a %d-byte event with %d groups", step.name, len(f.raw), step.groups)
	}
}

// TestReactionsCountInComplexity: --max-complexity bounds the objects one
// operation may ask for, so a message's reactions count as the most groups
// a message may hold (1 + children × chat.MaxReactionGroups), as a page
// counts per item. The query below is 1 (message) + 1 (reactions) + 2 ×
// the cap: refused one below that, accepted at it, and then it returns no
// more groups than the limit.
func TestReactionsCountInComplexity(t *testing.T) {
	const query = `query($m: ID!) { message(id: $m) { reactions { emoji count } } }`
	const complexity = 2 + 2*chat.MaxReactionGroups
	for _, tc := range []struct {
		name  string
		limit int
		code  string
	}{
		{"below the reactions' count", complexity - 1, codeComplexityExceeded},
		{"at it", complexity, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, func(o *Options) {
				o.Limits.MaxComplexity = tc.limit
				o.Limits.MaxDepth = 15
			})
			msg := r.post(r.room("complexity"), "alice", "hi")
			fillReactionGroups(t, r, msg.ID)
			_, _, body := r.graphqlPost("", query, map[string]any{"m": msg.ID}, nil)
			if got := errorCode(body); got != tc.code {
				t.Fatalf("code %q, want %q: %v", got, tc.code, body)
			}
			if tc.code != "" {
				return
			}
			data, _ := body["data"].(map[string]any)
			message, _ := data["message"].(map[string]any)
			groups, _ := message["reactions"].([]any)
			if len(groups) != chat.MaxReactionGroups || len(groups) > tc.limit {
				t.Fatalf("a query accepted at complexity limit %d returned %d groups, want %d: %v",
					tc.limit, len(groups), chat.MaxReactionGroups, body)
			}
		})
	}
}
