package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/graph"
)

// Private rooms meeting the other features: presence and typing, shared
// and per-identity executions, resuming, several transports and replicas
// at once. ann creates the rooms (see private_test.go).

// privEvents selects a @viewerDependent field: an execution per identity.
const privEvents = `subscription($r: ID!, $after: String) { roomEvents(roomId: $r, after: $after) { kind message { text reactions { emoji count viewerHasReacted } } } }`

// endOf skips the results already on their way to s and returns what
// ends it (or the first other event).
func endOf(s privSub) privEvent {
	for range 20 {
		if ev := s.next(5 * time.Second); ev.kind != "data" {
			return ev
		}
	}
	return privEvent{kind: "malformed", body: "20 results and no end"}
}

// TestPrivatePresenceRemovalAcrossReplicas: bob, a member of a private
// room, is present through subscriptions on replica b (messagePosted over
// graphql-transport-ws, roomPresence over SSE); carl watches the room's
// presence on replica a. ann removes bob on a: both of bob's
// subscriptions end with FORBIDDEN, carl sees bob leave, and bob's
// setTyping is FORBIDDEN on either replica. Added again, bob comes back:
// his roomPresence starts with a SNAPSHOT holding him, and carl sees him
// JOINED.
func TestPrivatePresenceRemovalAcrossReplicas(t *testing.T) {
	a := presenceReplica(t, "a", "", graph.Options{})
	b := presenceReplica(t, "b", a.log.ClientURL(), graph.Options{})
	room := a.privateRoom("mix", "bob", "carl")
	waitFor(t, "b to know the room", func() bool { _, ok := b.chat.RoomInfo(room); return ok })
	vars := map[string]any{"r": room}

	carl := watchRoomPresence(a, "carl", room)
	carl.first("carl")

	ws := b.dialTransport("bob")
	ws.subscribe("subscribe", "s", privPosted, vars)
	bobWS := wsSub{c: ws}
	sse, status, body := b.openSSE(sseRequest{method: http.MethodPost, query: presenceQuery, vars: vars,
		header: http.Header{auth.DevHeader: {"bob"}}})
	if sse == nil {
		t.Fatalf("SSE: %d %s", status, body)
	}
	bobSSE := sseSub{sse}
	expectData(t, bobSSE, "SNAPSHOT")
	carl.until(5*time.Second, "bob", "carl")

	if _, err := a.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	if ev := bobWS.next(5 * time.Second); ev.kind != "error" || ev.code != "FORBIDDEN" {
		t.Errorf("bob's messagePosted over WebSocket after removal: %+v, want FORBIDDEN", ev)
	}
	if ev := endOf(bobSSE); ev.kind != "error" || ev.code != "FORBIDDEN" {
		t.Errorf("bob's roomPresence over SSE after removal: %+v, want FORBIDDEN", ev)
	}
	if ev, _ := carl.until(5*time.Second, "carl"); ev.Kind != "LEFT" && ev.Kind != "SNAPSHOT" {
		t.Errorf("bob went as %+v", ev)
	}
	for _, r := range []*replica{a, b} {
		waitFor(t, "the removal on every replica", func() bool {
			return strings.Contains(setTyping(t, r, "bob", room), "FORBIDDEN")
		})
	}

	// Added again: bob is back, in his own presence and in carl's.
	if _, err := a.chat.AddMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's re-admission on b", func() bool {
		_, _, body := b.graphqlPost("bob", `query($r: ID!) { room(id: $r) { id } }`, vars, nil)
		return body["errors"] == nil
	})
	watchRoomPresence(b, "bob", room).first("bob", "carl")
	if ev, _ := carl.until(5*time.Second, "bob", "carl"); ev.Kind != "JOINED" || ev.User != "bob" {
		t.Errorf("bob came back as %+v", ev)
	}
}

// TestPrivatePresenceRemovedMemberStopsTyping: bob, typing in a private
// room, is removed from it. He can no longer type there (his setTyping is
// FORBIDDEN), so the members stop seeing him typing at once: he leaves
// carl's presence not typing, and dave, joining the shared execution
// afterwards, starts from a SNAPSHOT without him typing. TypingFor is
// long, so that typing still shown is the removal's doing, not a race
// with the indicator running out.
func TestPrivatePresenceRemovedMemberStopsTyping(t *testing.T) {
	g := graph.Options{TypingFor: 4 * time.Second, TypingEvery: 50 * time.Millisecond}
	r := presenceReplica(t, "one", "", g)
	room := r.privateRoom("typing", "bob", "carl", "dave")
	vars := map[string]any{"r": room}

	carl := watchRoomPresence(r, "carl", room)
	carl.first("carl")
	ws := r.dialTransport("bob")
	ws.subscribe("subscribe", "s", privPosted, vars)
	carl.until(5*time.Second, "bob", "carl")

	if got := setTyping(t, r, "bob", room); !strings.Contains(got, `"setTyping":true`) {
		t.Fatalf("bob's setTyping: %s", got)
	}
	for typing := false; !typing; {
		typing = slices.Contains(carl.next(5*time.Second).Typing, "bob")
	}

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	if ev, seen := carl.until(3*time.Second, "carl"); slices.Contains(ev.Typing, "bob") {
		t.Fatalf("bob left carl's presence still typing, though removed: %+v", seen)
	}
	dave := watchRoomPresence(r, "dave", room)
	if ev := dave.next(5 * time.Second); ev.Kind != "SNAPSHOT" || slices.Contains(ev.Typing, "bob") {
		t.Fatalf("dave, joining after bob's removal, started from %+v; want a SNAPSHOT without bob typing", ev)
	}
}

// TestPrivatePresenceResumedMember: bob resumes messagePosted in a
// private room from a cursor of his membership: he is present for carl
// while the resumed subscription runs, and his removal ends it with
// FORBIDDEN, delivers nothing posted after it, and takes him out of
// carl's presence.
func TestPrivatePresenceResumedMember(t *testing.T) {
	r := presenceReplica(t, "one", "", graph.Options{})
	room := r.privateRoom("resumed", "bob", "carl")
	m := r.post(room, "bob", "while a member")
	cursor := messageCursor(t, r, "bob", m.ID)
	backlog := []string{"backlog a", "backlog b", "backlog c"}
	for _, text := range backlog {
		r.post(room, "ann", text)
	}
	carl := watchRoomPresence(r, "carl", room)
	carl.first("carl")

	c := r.dialTransport("bob")
	c.subscribe("subscribe", "s", privPosted, map[string]any{"r": room, "after": cursor})
	bob := wsSub{c: c}
	for _, text := range backlog {
		expectData(t, bob, text)
	}
	carl.until(5*time.Second, "bob", "carl")
	r.post(room, "ann", "live one")
	expectData(t, bob, "live one")

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	r.post(room, "ann", "after the removal")
	expectForbidden(t, bob, "after the removal")
	if ev, _ := carl.until(5*time.Second, "carl"); ev.Kind != "LEFT" || ev.User != "bob" {
		t.Errorf("bob went as %+v", ev)
	}
}

// TestPrivatePresenceRejoinShared: bob and carl share one roomPresence
// execution of a private room; bob is removed (his subscription ends with
// FORBIDDEN, carl's goes on and sees him leave), added again, and
// subscribes again to the running execution, from another socket and from
// the first one: each starts with a SNAPSHOT, and carl sees him back.
func TestPrivatePresenceRejoinShared(t *testing.T) {
	r := presenceReplica(t, "one", "", graph.Options{})
	room := r.privateRoom("rejoin", "bob", "carl")
	vars := map[string]any{"r": room}
	carl := watchRoomPresence(r, "carl", room)
	carl.first("carl")
	c := r.dialTransport("bob")
	c.subscribe("subscribe", "s", presenceQuery, vars)
	(&presenceWatcher{t: t, c: c}).first("bob", "carl")
	carl.until(5*time.Second, "bob", "carl")

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	if ev := endOf(wsSub{c}); ev.kind != "error" || ev.code != "FORBIDDEN" {
		t.Fatalf("bob's roomPresence after removal: %+v, want FORBIDDEN", ev)
	}
	carl.until(5*time.Second, "carl")

	if _, err := r.chat.AddMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	watchRoomPresence(r, "bob", room).first("bob", "carl")
	// A subscriber joining the shared execution makes the next batch a
	// SNAPSHOT, so bob may come back to carl in one.
	if ev, _ := carl.until(5*time.Second, "bob", "carl"); ev.Kind != "SNAPSHOT" && (ev.Kind != "JOINED" || ev.User != "bob") {
		t.Errorf("bob came back as %+v", ev)
	}
	// The first socket, whose subscription was refused, serves him again.
	c.subscribe("subscribe", "again", presenceQuery, vars)
	for range 20 {
		ev := wsSub{c}.next(5 * time.Second)
		if ev.kind == "timeout" {
			t.Fatalf("bob's second roomPresence on the first socket: %+v", ev)
		}
		if ev.kind == "other" && ev.code == "again" {
			if !strings.Contains(ev.body, `"next"`) || !strings.Contains(ev.body, "SNAPSHOT") {
				t.Fatalf("bob's second roomPresence on the first socket: %s", ev.body)
			}
			return
		}
	}
	t.Fatal("bob's second roomPresence on the first socket never started")
}

// TestPrivateSelfRemovalOnSameSocket: bob removes himself with a mutation
// sent on the very socket holding his subscription of the room: the
// mutation answers (the room without its content), then complete, and
// the subscription ends with FORBIDDEN; the socket goes on.
func TestPrivateSelfRemovalOnSameSocket(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("self", "bob")
	lobby := r.room("lobby")
	c := r.dialTransport("bob")
	c.subscribe("subscribe", "s", privPosted, map[string]any{"r": room})
	waitFor(t, "bob's subscription", func() bool { return r.members() == 1 })
	r.post(room, "ann", "before")
	expectData(t, wsSub{c}, "before")

	c.subscribe("subscribe", "m", `mutation($r: ID!) { removeMember(roomId: $r, userId: "bob") { id messageCount messages { nodes { text } } } }`,
		map[string]any{"r": room})
	got := map[string]string{} // "id type" → frame
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 3 && time.Now().Before(deadline) {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			break
		}
		if !f.keepalive() {
			got[f.ID+" "+f.Type] = f.raw
		}
	}
	if raw := got["m next"]; !strings.Contains(raw, `"messageCount":0`) || strings.Contains(raw, "before") || strings.Contains(raw, "errors") {
		t.Errorf("the mutation's answer: %q", raw)
	}
	if _, ok := got["m complete"]; !ok {
		t.Errorf("no complete for the mutation: %v", got)
	}
	if raw := got["s error"]; !strings.Contains(raw, "FORBIDDEN") {
		t.Errorf("the subscription did not end with FORBIDDEN: %v", got)
	}

	c.subscribe("subscribe", "l", privPosted, map[string]any{"r": lobby})
	waitFor(t, "the lobby subscription", func() bool { return r.members() == 1 })
	r.post(lobby, "ann", "still here")
	switch ev := (wsSub{c}).next(5 * time.Second); {
	case ev.kind == "other" && ev.code == "l" && strings.Contains(ev.body, "still here"):
	default:
		t.Fatalf("socket after self-removal: %+v, want the lobby's message", ev)
	}
}

// TestPrivateViewerDependentRemoval: bob's roomEvents of a private room,
// selecting a @viewerDependent field (an execution per identity), over
// graphql-transport-ws, SSE and multipart at once: bob's removal ends all
// three with FORBIDDEN within a second, and carl's goes on.
func TestPrivateViewerDependentRemoval(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("per identity", "bob", "carl")
	vars := map[string]any{"r": room}
	c := r.dialTransport("bob")
	c.subscribe("subscribe", "s", privEvents, vars)
	sse, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: privEvents, vars: vars,
		header: http.Header{auth.DevHeader: {"bob"}}})
	if sse == nil {
		t.Fatalf("SSE: %d %s", status, body)
	}
	mp, resp, mbody := r.openMultipart(mpRequest{query: privEvents, vars: vars, header: http.Header{auth.DevHeader: {"bob"}}})
	if mp == nil {
		t.Fatalf("multipart: %d %s", resp.StatusCode, mbody)
	}
	cc := r.dialTransport("carl")
	cc.subscribe("subscribe", "s", privEvents, vars)
	bobs := map[string]privSub{"ws": wsSub{c}, "sse": sseSub{sse}, "multipart": mpSub{mp}}
	carl := wsSub{cc}
	waitFor(t, "every subscription", func() bool { return r.members() == 4 })

	m := r.post(room, "ann", "hello")
	for _, s := range bobs {
		expectData(t, s, "hello")
	}
	expectData(t, carl, "hello")
	if _, err := r.chat.React(context.Background(), chatActor("bob"), m.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	for _, s := range bobs {
		expectData(t, s, `"viewerHasReacted":true`)
	}
	expectData(t, carl, `"viewerHasReacted":false`)

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	for name, s := range bobs {
		if ev := s.next(5 * time.Second); ev.kind != "error" || ev.code != "FORBIDDEN" {
			t.Errorf("%s: %+v, want FORBIDDEN", name, ev)
		}
	}
	if d := time.Since(removed); d > time.Second {
		t.Errorf("FORBIDDEN after %v, want within 1s", d)
	}
	if _, err := r.chat.EditMessage(context.Background(), chatActor("ann"), m.ID, 1, "edited after"); err != nil {
		t.Fatal(err)
	}
	expectData(t, carl, "edited after")
}

// TestPrivateResumeAcrossGapEvents: bob, removed and added again, resumes
// roomEvents from a cursor of his first membership: he gets the edits,
// reactions and deletions that happened after he was added again, and
// none of those of the gap, then live ones, with no duplicate.
func TestPrivateResumeAcrossGapEvents(t *testing.T) {
	for _, tr := range []string{"ws", "sse"} {
		t.Run(tr, func(t *testing.T) {
			r := newReplica(t, nil)
			ctx := context.Background()
			ann := chatActor("ann")
			room := r.privateRoom("gap", "bob")
			m1 := r.post(room, "ann", "one")
			cursor := messageCursor(t, r, "bob", m1.ID)
			if _, err := r.chat.RemoveMember(ctx, ann, room, "bob"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.chat.EditMessage(ctx, ann, m1.ID, 1, "gap edit"); err != nil {
				t.Fatal(err)
			}
			m2 := r.post(room, "ann", "gap post")
			if _, err := r.chat.React(ctx, ann, m2.ID, "🙈"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.chat.AddMember(ctx, ann, room, "bob"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.chat.EditMessage(ctx, ann, m1.ID, 2, "back edit"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.chat.React(ctx, ann, m2.ID, "🎉"); err != nil {
				t.Fatal(err)
			}

			vars := map[string]any{"r": room, "after": cursor}
			var s privSub
			if tr == "ws" {
				c := r.dialTransport("bob")
				c.subscribe("subscribe", "s", privEvents, vars)
				s = wsSub{c}
			} else {
				c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: privEvents, vars: vars,
					header: http.Header{auth.DevHeader: {"bob"}}})
				if c == nil {
					t.Fatalf("SSE: %d %s", status, body)
				}
				s = sseSub{c}
			}
			for _, want := range []struct{ kind, text string }{
				{"MESSAGE_EDITED", "back edit"}, // the edit after he came back
				{"REACTIONS_CHANGED", "🎉"},      // the reaction after he came back
			} {
				if ev := s.next(5 * time.Second); ev.kind != "data" || !strings.Contains(ev.body, want.kind) || !strings.Contains(ev.body, want.text) {
					t.Fatalf("got %+v, want %s with %q", ev, want.kind, want.text)
				}
			}
			if _, err := r.chat.DeleteMessage(ctx, ann, m2.ID, m2.Version); err != nil {
				t.Fatal(err)
			}
			expectData(t, s, "MESSAGE_DELETED")
			if ev := s.next(300 * time.Millisecond); ev.kind != "timeout" {
				t.Fatalf("then %+v, want nothing", ev)
			}
		})
	}
}
