package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// Private rooms through the whole stack: the chat domain, the real schema
// and every transport. ann creates the rooms; a room's members are named
// by each test; eve is never a member.

const privPosted = `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`

// privateRoom creates a private room as ann and adds members.
func (r *replica) privateRoom(name string, members ...string) string {
	r.t.Helper()
	ctx := context.Background()
	room, err := r.chat.CreatePrivateRoom(ctx, chatActor("ann"), name)
	if err != nil {
		r.t.Fatalf("create private room: %v", err)
	}
	for _, m := range members {
		if _, err := r.chat.AddMember(ctx, chatActor("ann"), room.ID, m); err != nil {
			r.t.Fatalf("add member %s: %v", m, err)
		}
	}
	return room.ID
}

// privEvent is what a subscriber saw next, whatever its transport: a
// result ("data", with its body), an error ending the subscription
// ("error", with its extensions.code), the end of the subscription
// ("end"), or nothing in time ("timeout").
type privEvent struct {
	kind string
	code string
	body string
}

// privSub is one subscription as its client reads it. next may be called
// from any goroutine; it never fails the test itself.
type privSub interface {
	next(within time.Duration) privEvent
}

// privTransport opens a subscription as user over one transport.
type privTransport struct {
	name string
	open func(r *replica, user string, vars map[string]any) privSub
}

var privTransports = []privTransport{
	{"graphql-transport-ws", func(r *replica, user string, vars map[string]any) privSub {
		c := r.dialTransport(user)
		c.subscribe("subscribe", "s", privPosted, vars)
		return wsSub{c: c}
	}},
	{"graphql-ws (legacy)", func(r *replica, user string, vars map[string]any) privSub {
		c := r.dialLegacy(user)
		c.subscribe("start", "s", privPosted, vars)
		return wsSub{c: c}
	}},
	{"SSE", func(r *replica, user string, vars map[string]any) privSub {
		c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: privPosted, vars: vars,
			header: http.Header{auth.DevHeader: {user}}})
		if c == nil {
			r.t.Fatalf("SSE: %d %s", status, body)
		}
		return sseSub{c}
	}},
	{"multipart", func(r *replica, user string, vars map[string]any) privSub {
		c, resp, body := r.openMultipart(mpRequest{query: privPosted, vars: vars, header: http.Header{auth.DevHeader: {user}}})
		if c == nil {
			r.t.Fatalf("multipart: %d %s", resp.StatusCode, body)
		}
		return mpSub{c}
	}},
}

// resultEvent classifies a GraphQL result: data, or an error with its
// code.
func resultEvent(raw []byte) privEvent {
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return privEvent{kind: "malformed", body: string(raw)}
	}
	if len(res.Errors) > 0 {
		return privEvent{kind: "error", code: res.Errors[0].Extensions.Code, body: string(raw)}
	}
	return privEvent{kind: "data", body: string(res.Data)}
}

// wsSub reads the frames of subscription "s" on a socket; frames of other
// ids are returned as "other" with their id in code.
type wsSub struct{ c *wsClient }

func (s wsSub) next(within time.Duration) privEvent {
	for {
		f, err := s.c.read(within)
		if err != nil {
			return privEvent{kind: "timeout", body: err.Error()}
		}
		if f.keepalive() {
			continue
		}
		if f.ID != "s" {
			return privEvent{kind: "other", code: f.ID, body: f.raw}
		}
		switch f.Type {
		case "next", "data":
			return resultEvent(f.Payload)
		case "error":
			var errs []struct {
				Extensions struct {
					Code string `json:"code"`
				} `json:"extensions"`
			}
			if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) == 0 {
				return privEvent{kind: "malformed", body: f.raw}
			}
			return privEvent{kind: "error", code: errs[0].Extensions.Code, body: f.raw}
		case "complete":
			return privEvent{kind: "end", body: f.raw}
		}
		return privEvent{kind: "malformed", body: f.raw}
	}
}

type sseSub struct{ c *sseClient }

func (s sseSub) next(within time.Duration) privEvent {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.c.events:
			switch {
			case !ok:
				return privEvent{kind: "end", body: "stream closed"}
			case ev.comment:
				continue
			case ev.event == "next":
				return resultEvent([]byte(ev.data))
			case ev.event == "complete":
				return privEvent{kind: "end", body: "complete"}
			}
			return privEvent{kind: "malformed", body: ev.event + " " + ev.data}
		case <-timer.C:
			return privEvent{kind: "timeout"}
		}
	}
}

type mpSub struct{ c *mpClient }

func (s mpSub) next(within time.Duration) privEvent {
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case part, ok := <-s.c.parts:
			switch {
			case !ok:
				return privEvent{kind: "end", body: "stream closed"}
			case part.heartbeat:
				continue
			case len(part.errors) > 0:
				code, _ := part.errors[0]["extensions"].(map[string]any)["code"].(string)
				return privEvent{kind: "error", code: code, body: part.body}
			}
			return resultEvent(part.payload)
		case <-timer.C:
			return privEvent{kind: "timeout"}
		}
	}
}

// expectData fails unless the subscription's next event is a result
// holding text.
func expectData(t *testing.T, s privSub, text string) {
	t.Helper()
	if ev := s.next(5 * time.Second); ev.kind != "data" || !strings.Contains(ev.body, text) {
		t.Fatalf("got %+v, want a result with %q", ev, text)
	}
}

// expectForbidden fails unless the subscription ends with FORBIDDEN and
// nothing more: its error, then (on HTTP streams) the stream's end.
func expectForbidden(t *testing.T, s privSub, leak ...string) {
	t.Helper()
	ev := s.next(5 * time.Second)
	if ev.kind != "error" || ev.code != "FORBIDDEN" {
		t.Fatalf("got %+v, want a FORBIDDEN error", ev)
	}
	for _, l := range leak {
		if strings.Contains(ev.body, l) {
			t.Fatalf("the error %s tells %q", ev.body, l)
		}
	}
	if _, ws := s.(wsSub); ws {
		return // an error frame is the id's last
	}
	if ev := s.next(5 * time.Second); ev.kind != "end" {
		t.Fatalf("after the error: %+v, want the stream's end", ev)
	}
}

// TestPrivateRoomNonMemberQueriesAndMutations: a non-member, signed in or
// anonymous, gets FORBIDDEN from every query and mutation on a private
// room, and nothing of the room: not its name, not its existence in
// rooms, not through a name conflict.
func TestPrivateRoomNonMemberQueriesAndMutations(t *testing.T) {
	r := newReplica(t, nil)
	const name = "Secret Plans"
	room := r.privateRoom(name, "bob")
	msg := r.post(room, "ann", "the secret text")

	tests := []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"room", `query($r: ID!) { room(id: $r) { id name private } }`, map[string]any{"r": room}},
		{"room's members", `query($r: ID!) { room(id: $r) { members { nodes { id } } } }`, map[string]any{"r": room}},
		{"message", `query($m: ID!) { message(id: $m) { text room { name } } }`, map[string]any{"m": msg.ID}},
		{"postMessage", `mutation($r: ID!) { postMessage(roomId: $r, text: "hi") { id } }`, map[string]any{"r": room}},
		{"editMessage", `mutation($m: ID!) { editMessage(id: $m, version: 1, text: "x") { id } }`, map[string]any{"m": msg.ID}},
		{"deleteMessage", `mutation($m: ID!) { deleteMessage(id: $m, version: 1) { id } }`, map[string]any{"m": msg.ID}},
		{"react", `mutation($m: ID!) { react(messageId: $m, emoji: "👍") { id } }`, map[string]any{"m": msg.ID}},
		{"addMember (themselves)", `mutation($r: ID!) { addMember(roomId: $r, userId: "eve") { id } }`, map[string]any{"r": room}},
		{"removeMember", `mutation($r: ID!) { removeMember(roomId: $r, userId: "bob") { id } }`, map[string]any{"r": room}},
	}
	for _, tc := range tests {
		users := []string{"eve", ""}
		if strings.HasPrefix(tc.query, "mutation") {
			users = users[:1] // anonymous mutations are UNAUTHENTICATED before anything else
		}
		for _, user := range users {
			t.Run(fmt.Sprintf("%s as %q", tc.name, user), func(t *testing.T) {
				r := r.forTest(t)
				_, _, body := r.graphqlPost(user, tc.query, tc.vars, nil)
				if code := errorCode(body); code != "FORBIDDEN" {
					t.Fatalf("got %v, want FORBIDDEN", body)
				}
				raw, _ := json.Marshal(body)
				for _, leak := range []string{name, "secret text"} {
					if strings.Contains(string(raw), leak) {
						t.Fatalf("the answer %s tells %q", raw, leak)
					}
				}
			})
		}
	}

	t.Run("over a WebSocket", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dialTransport("eve")
		c.subscribe("subscribe", "s", `query($r: ID!) { room(id: $r) { name } }`, map[string]any{"r": room})
		if ev := (wsSub{c}).next(5 * time.Second); ev.kind != "error" || ev.code != "FORBIDDEN" || strings.Contains(ev.body, name) {
			t.Fatalf("got %+v, want a FORBIDDEN error", ev)
		}
	})

	t.Run("rooms lists only what the viewer may see", func(t *testing.T) {
		r := r.forTest(t)
		public := r.room("lobby")
		for _, tc := range []struct {
			user        string
			seesPrivate bool
		}{{"ann", true}, {"bob", true}, {"eve", false}, {"", false}} {
			_, _, body := r.graphqlPost(tc.user, `{ rooms(first: 100) { totalCount nodes { id } } }`, nil, nil)
			raw, _ := json.Marshal(body)
			if !strings.Contains(string(raw), public) {
				t.Errorf("%q: %s does not list the public room", tc.user, raw)
			}
			if got := strings.Contains(string(raw), room); got != tc.seesPrivate {
				t.Errorf("%q: private room listed = %v, want %v: %s", tc.user, got, tc.seesPrivate, raw)
			}
		}
	})

	t.Run("a private room's name is never taken", func(t *testing.T) {
		r := r.forTest(t)
		for _, private := range []bool{false, true} {
			_, _, body := r.graphqlPost("eve", `mutation($n: String!, $p: Boolean) { createRoom(name: $n, private: $p) { id name private } }`,
				map[string]any{"n": strings.ToLower(name), "p": private}, nil)
			if body["errors"] != nil {
				t.Fatalf("creating a room (private %v) named like a private room: %v", private, body)
			}
		}
	})

	t.Run("members see the room", func(t *testing.T) {
		r := r.forTest(t)
		_, _, body := r.graphqlPost("bob", `query($r: ID!) { room(id: $r) { name private members { totalCount nodes { id } } } }`,
			map[string]any{"r": room}, nil)
		raw, _ := json.Marshal(body)
		if body["errors"] != nil || !strings.Contains(string(raw), `"private":true`) || !strings.Contains(string(raw), `"totalCount":2`) ||
			!strings.Contains(string(raw), name) {
			t.Fatalf("bob's room: %s", raw)
		}
	})
}

// TestPrivateRoomNonMemberSubscriptions: a non-member's subscription, on
// every transport, ends with FORBIDDEN and nothing else, although it shares
// the execution a member started; the member's goes on.
func TestPrivateRoomNonMemberSubscriptions(t *testing.T) {
	const name = "Hidden"
	for _, tr := range privTransports {
		for _, user := range []string{"eve", ""} {
			t.Run(fmt.Sprintf("%s as %q", tr.name, user), func(t *testing.T) {
				r := newReplica(t, nil)
				room := r.privateRoom(name, "bob")
				vars := map[string]any{"r": room}
				bob := privTransports[0].open(r, "bob", vars)
				waitFor(t, "bob's subscription", func() bool { return r.members() == 1 })

				eve := tr.open(r, user, vars)
				expectForbidden(t, eve, name)
				if n := r.server.execs.count(); n != 1 {
					t.Fatalf("%d executions, want bob's alone", n)
				}
				r.post(room, "ann", "for members only")
				expectData(t, bob, "for members only")
				if r.members() != 1 {
					t.Fatalf("%d members of executions, want bob alone", r.members())
				}
			})
		}
	}
}

// TestPrivateRoomNonMemberStartsTheExecution: a non-member whose
// subscription starts the execution is refused, not the execution: a
// member's identical subscription then works.
func TestPrivateRoomNonMemberStartsTheExecution(t *testing.T) {
	for _, tr := range privTransports {
		t.Run(tr.name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.privateRoom("first come", "bob")
			vars := map[string]any{"r": room}
			expectForbidden(t, tr.open(r, "eve", vars))
			waitFor(t, "eve's execution to end", func() bool { return r.server.execs.count() == 0 })
			bob := tr.open(r, "bob", vars)
			waitFor(t, "bob's subscription", func() bool { return r.members() == 1 })
			r.post(room, "ann", "for bob")
			expectData(t, bob, "for bob")
		})
	}
}

// TestPrivateRoomRemovalEndsSubscriptions: a removed member's
// subscriptions of the room end with FORBIDDEN within 1 s on both replicas
// and every transport, and nothing posted after the removal reaches them;
// the other members' subscriptions go on.
func TestPrivateRoomRemovalEndsSubscriptions(t *testing.T) {
	a, b := newReplicaPair(t, nil)
	room := a.privateRoom("war room", "bob", "carl")
	lobby := a.room("lobby")
	vars := map[string]any{"r": room}
	waitFor(t, "the room on the second replica", func() bool { _, ok := b.chat.RoomInfo(room); return ok })

	type sub struct {
		name string
		s    privSub
		ws   *wsClient // to prove nothing follows on the socket
	}
	var bobs []sub
	var carls []privSub
	for ri, r := range []*replica{a, b} {
		for _, tr := range privTransports {
			s := tr.open(r, "bob", vars)
			var ws *wsClient
			if w, ok := s.(wsSub); ok {
				ws = w.c
				typ := "start"
				if tr.name == "graphql-transport-ws" {
					typ = "subscribe"
				}
				ws.subscribe(typ, "fence", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": lobby})
			}
			bobs = append(bobs, sub{fmt.Sprintf("%s on replica %c", tr.name, 'a'+ri), s, ws})
		}
		carls = append(carls, privTransports[0].open(r, "carl", vars))
	}
	for _, r := range []*replica{a, b} {
		waitFor(t, "every subscription to join", func() bool { return r.members() == 7 })
		if n := r.server.execs.count(); n != 2 {
			t.Fatalf("%d executions on a replica, want one for the room and one for the lobby", n)
		}
	}
	a.post(room, "ann", "before")
	for _, s := range bobs {
		expectData(t, s.s, "before")
	}
	for _, c := range carls {
		expectData(t, c, "before")
	}

	_, _, body := a.graphqlPost("carl", `mutation($r: ID!) { removeMember(roomId: $r, userId: "bob") { id } }`, vars, nil)
	if body["errors"] != nil {
		t.Fatalf("removeMember: %v", body)
	}
	removed := time.Now()
	// Nothing is posted until every subscription has ended: the removal
	// alone must end them.
	var wg sync.WaitGroup
	took := make([]time.Duration, len(bobs))
	got := make([]privEvent, len(bobs))
	for i, s := range bobs {
		wg.Go(func() {
			got[i] = s.s.next(5 * time.Second)
			took[i] = time.Since(removed)
		})
	}
	wg.Wait()
	for i, s := range bobs {
		if got[i].kind != "error" || got[i].code != "FORBIDDEN" {
			t.Errorf("%s: got %+v, want FORBIDDEN", s.name, got[i])
		} else if took[i] > time.Second {
			t.Errorf("%s: FORBIDDEN %v after the removal, want within 1s", s.name, took[i])
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	a.post(room, "ann", "after the removal")
	for _, c := range carls {
		expectData(t, c, "after the removal")
	}
	a.post(lobby, "ann", "fence")
	for _, s := range bobs {
		if s.ws == nil {
			if ev := s.s.next(5 * time.Second); ev.kind != "end" {
				t.Errorf("%s: after the error, %+v, want the stream's end", s.name, ev)
			}
			continue
		}
		// Nothing for the room between the error and the fence.
		if ev := s.s.next(5 * time.Second); ev.kind != "other" || ev.code != "fence" || !strings.Contains(ev.body, "fence") {
			t.Errorf("%s: after the error, %+v, want the fence", s.name, ev)
		}
	}
	for _, r := range []*replica{a, b} {
		waitFor(t, "bob's subscriptions to leave", func() bool { return r.members() == 3 })
	}
}

// TestPrivateRoomResumeAfterRemoval: a removed member resuming from a
// cursor of their membership gets FORBIDDEN and nothing posted since.
func TestPrivateRoomResumeAfterRemoval(t *testing.T) {
	for _, tr := range privTransports {
		t.Run(tr.name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.privateRoom("resume", "bob")
			m := r.post(room, "bob", "while a member")
			cursor := messageCursor(t, r, "bob", m.ID)
			if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
				t.Fatal(err)
			}
			r.post(room, "ann", "after the removal")

			bob := tr.open(r, "bob", map[string]any{"r": room, "after": cursor})
			expectForbidden(t, bob, "after the removal")
			waitFor(t, "the replay to stop", func() bool { return r.members() == 0 && r.server.execs.count() == 0 })
		})
	}
}

// TestPrivateRoomLateMemberResumesFromJoin: a member added later, or
// removed and added again, resuming from an older cursor gets only what
// followed their (latest) joining.
func TestPrivateRoomLateMemberResumesFromJoin(t *testing.T) {
	for _, tr := range privTransports {
		t.Run(tr.name, func(t *testing.T) {
			r := newReplica(t, nil)
			ctx := context.Background()
			room := r.privateRoom("late", "bob")
			old := r.post(room, "ann", "before dave joined")
			oldCursor := messageCursor(t, r, "ann", old.ID)
			bobs := r.post(room, "bob", "bob's last as a member")
			bobCursor := messageCursor(t, r, "bob", bobs.ID)
			if _, err := r.chat.RemoveMember(ctx, chatActor("ann"), room, "bob"); err != nil {
				t.Fatal(err)
			}
			r.post(room, "ann", "while bob was away")
			for _, u := range []string{"dave", "bob"} {
				if _, err := r.chat.AddMember(ctx, chatActor("ann"), room, u); err != nil {
					t.Fatal(err)
				}
			}
			r.post(room, "ann", "after they joined")

			dave := tr.open(r, "dave", map[string]any{"r": room, "after": oldCursor})
			expectData(t, dave, "after they joined")
			bob := tr.open(r, "bob", map[string]any{"r": room, "after": bobCursor})
			expectData(t, bob, "after they joined")
			// Both go on live, with no duplicate.
			r.post(room, "ann", "live")
			expectData(t, dave, "live")
			expectData(t, bob, "live")
		})
	}
}

// messageCursor is a message's cursor as user reads it.
func messageCursor(t *testing.T, r *replica, user, id string) string {
	t.Helper()
	_, _, body := r.graphqlPost(user, `query($m: ID!) { message(id: $m) { cursor } }`, map[string]any{"m": id}, nil)
	data, _ := body["data"].(map[string]any)
	msg, _ := data["message"].(map[string]any)
	cursor, _ := msg["cursor"].(string)
	if cursor == "" {
		t.Fatalf("no cursor for %s as %s: %v", id, user, body)
	}
	return cursor
}

// TestPrivateRoomThousandMembersShareOneExecution: 1,000 members of a
// private room subscribed alike cost one execution, and every one of them
// receives each event.
func TestPrivateRoomThousandMembersShareOneExecution(t *testing.T) {
	const members = 1000
	fc := &fieldCounter{counts: map[string]int{}}
	r := newReplica(t, func(o *Options) { o.AroundFields = fc.middleware })
	users := make([]string, members)
	for i := range users {
		users[i] = fmt.Sprintf("member%d", i)
	}
	room := r.privateRoom("big", users...)
	vars := map[string]any{"r": room}
	subs := make([]privSub, members)
	for i, u := range users {
		subs[i] = privTransports[i%2].open(r, u, vars) // both WebSocket protocols
	}
	waitFor(t, "every subscription to join", func() bool { return r.members() == members })
	if n := r.server.execs.count(); n != 1 {
		t.Fatalf("%d executions for %d members, want 1", n, members)
	}
	r.post(room, "ann", "to all")
	var wg sync.WaitGroup
	got := make([]privEvent, members)
	for i, s := range subs {
		wg.Go(func() { got[i] = s.next(10 * time.Second) })
	}
	wg.Wait()
	for i, ev := range got {
		if ev.kind != "data" || !strings.Contains(ev.body, "to all") {
			t.Fatalf("member %d got %+v", i, ev)
		}
	}
	if n := fc.get("Message.text"); n != 1 {
		t.Fatalf("Message.text resolved %d times for one event, want once", n)
	}
}

// TestPrivateRoomRemovalInSingleConnectionMode: on a graphql-sse stream of
// several operations, a removal ends the room's operation alone with
// FORBIDDEN (its error, then its complete); the stream and its other
// operations go on.
func TestPrivateRoomRemovalInSingleConnectionMode(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("single", "bob")
	lobby := r.room("lobby")
	token := r.reserve("bob")
	c := r.openSingle(token, "bob")
	r.mustOperate(token, "bob", "private", privPosted, map[string]any{"r": room})
	r.mustOperate(token, "bob", "lobby", privPosted, map[string]any{"r": lobby})
	waitFor(t, "both subscriptions", func() bool { return r.members() == 2 })

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	if code := c.expect("next", "private").code(t); code != "FORBIDDEN" {
		t.Fatalf("code %q, want FORBIDDEN", code)
	}
	c.expect("complete", "private")
	r.post(room, "ann", "after the removal")
	r.post(lobby, "ann", "fence")
	if got := c.expect("next", "lobby").text(t); got != "fence" {
		t.Fatalf("got %q on the lobby, want the fence", got)
	}
	waitFor(t, "the room's subscription to leave", func() bool { return r.members() == 1 })
}
