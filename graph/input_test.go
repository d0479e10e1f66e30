package graph

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/chat"
)

const inputTestCreateRoom = `mutation($n: String!) { createRoom(name: $n) { id name } }`

const inputTestPost = `mutation($r: ID!, $t: String!, $k: String) { postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id text version deleted } }`

// TestEmptyIdempotencyKeyIsRefused: chat reads an empty key as none, so
// a client sending "" as its key got a second post on a retry; it is
// refused as BAD_USER_INPUT (a null key still means none).
func TestEmptyIdempotencyKeyIsRefused(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	room, err := svc.CreateRoom(ctx, chat.Actor{ID: "alice"}, "general")
	if err != nil {
		t.Fatal(err)
	}
	do := executorWithVars(t, svc)
	vars := map[string]any{"r": room.ID, "t": "hello once", "k": ""}
	first := do("alice", inputTestPost, vars)
	retry := do("alice", inputTestPost, vars)
	if first.code() == string(chat.CodeBadUserInput) && retry.code() == string(chat.CodeBadUserInput) {
		return // refused: fine
	}
	page, err := svc.Messages(ctx, room.ID, chat.Window{Last: 50})
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalCount != 1 {
		t.Errorf("two posts with idempotencyKey \"\" were both accepted (%s, %s) and stored %d messages; want the retry to return the first post, or the key refused with BAD_USER_INPUT",
			first.Data, retry.Data, page.TotalCount)
	}
}

// TestIdempotencyKeyOfADeletedPost: a post with the key of a post deleted
// since is a CONFLICT: its text is gone, so a new text cannot be told from
// a retry, and answering with the deleted post lost the new text.
func TestIdempotencyKeyOfADeletedPost(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	room, err := svc.CreateRoom(ctx, alice, "general")
	if err != nil {
		t.Fatal(err)
	}
	do := executorWithVars(t, svc)
	first := do("alice", inputTestPost, map[string]any{"r": room.ID, "t": "oops, wrong room", "k": "compose-1"})
	if len(first.Errors) > 0 {
		t.Fatalf("first post: %+v", first.Errors)
	}
	page, err := svc.Messages(ctx, room.ID, chat.Window{Last: 1})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("messages: %v %+v", err, page)
	}
	if _, err := svc.DeleteMessage(ctx, alice, page.Items[0].ID, 1); err != nil {
		t.Fatal(err)
	}
	other := do("alice", inputTestPost, map[string]any{"r": room.ID, "t": "a new text", "k": "compose-1"})
	if other.code() != string(chat.CodeConflict) {
		t.Errorf("a post of another text with the key of a deleted (never edited) post: %s %+v; want CONFLICT, not the deleted first post (the new text is stored nowhere)",
			other.Data, other.Errors)
	}
}

// TestBrailleBlankShowsNothing: U+2800 BRAILLE PATTERN BLANK shows
// nothing (the usual way round "empty message" filters, as Hangul fillers
// are): a text, a name's edge or an emoji of it is refused as any
// invisible character is.
func TestBrailleBlankShowsNothing(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	room, err := svc.CreateRoom(ctx, alice, "general")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := svc.PostMessage(ctx, alice, room.ID, "hi", "")
	if err != nil {
		t.Fatal(err)
	}
	do := executorWithVars(t, svc)
	const blank = "\u2800"
	if r := do("bob", inputTestPost, map[string]any{"r": room.ID, "t": blank + blank}); r.code() != string(chat.CodeBadUserInput) {
		t.Errorf("postMessage of a text of braille blanks: %s %+v; want BAD_USER_INPUT", r.Data, r.Errors)
	}
	if r := do("bob", inputTestCreateRoom, map[string]any{"n": "general" + blank}); len(r.Errors) == 0 {
		t.Errorf("createRoom %q, which looks like the taken %q: %s; want BAD_USER_INPUT (or CONFLICT)", "general"+blank, "general", r.Data)
	}
	if r := do("bob", `mutation($m: ID!, $e: String!) { react(messageId: $m, emoji: $e) { id } }`,
		map[string]any{"m": msg.ID, "e": blank}); r.code() != string(chat.CodeBadUserInput) {
		t.Errorf("react with a braille blank: %s %+v; want BAD_USER_INPUT", r.Data, r.Errors)
	}
}
