package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// lostAnswerSetup starts replica a (embedded NATS) and replica b, which
// reaches that NATS through a proxy that can hold NATS's answers, with a
// short apply timeout.
func lostAnswerSetup(t *testing.T) (a, b *replica, p *natsProxy) {
	t.Helper()
	a = newReplicaOver(t, pubsub.Options{ListenAddr: "127.0.0.1:0"}, chat.Options{}, nil, nil)
	p = newNATSProxy(t, a.log.ClientURL())
	b = newReplicaOver(t, pubsub.Options{URLs: []string{p.url()}, Partitions: a.log.Partitions()},
		chat.Options{ApplyTimeout: time.Second}, nil, nil)
	return a, b, p
}

type lostAnswerError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func (e lostAnswerError) code() string { s, _ := e.Extensions["code"].(string); return s }

// lostAnswerGQL posts a GraphQL request to r as user.
func lostAnswerGQL(t *testing.T, r *replica, user, query string, vars map[string]any) (json.RawMessage, []lostAnswerError) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("X-Herald-User", user)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   json.RawMessage   `json:"data"`
		Errors []lostAnswerError `json:"errors"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return out.Data, out.Errors
}

// lostAnswer runs a mutation on b while NATS's answers to b are held, so
// that the event is stored but b hears nothing back within its apply
// timeout; it returns the errors b answered with, after releasing.
func loseAnswer(t *testing.T, b *replica, p *natsProxy, user, query string, vars map[string]any) []lostAnswerError {
	t.Helper()
	p.hold()
	_, errs := lostAnswerGQL(t, b, user, query, vars)
	p.release()
	return errs
}

// admitsMaybeApplied reports whether an error message tells the client that
// the change may have been made, rather than inviting a plain retry.
func admitsMaybeApplied(msg string) bool {
	m := strings.ToLower(msg)
	return strings.Contains(m, "may") || strings.Contains(m, "stored") || strings.Contains(m, "applied") || strings.Contains(m, "read back")
}

// TestLostAnswerSaysTheChangeMayBeStored: a mutation whose event NATS
// stored, but whose acknowledgement did not reach the replica within
// --apply-timeout, is answered OUTCOME_UNKNOWN, saying the change may have
// been stored, for every kind of mutation. It was UNAVAILABLE "the event
// log is unavailable; retry later": a client that followed the advice
// posted twice, toggled its reaction back off, created a second private
// room, or was told that its own room's name was taken.
func TestLostAnswerSaysTheChangeMayBeStored(t *testing.T) {
	a, b, p := lostAnswerSetup(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	pub := a.room("retry-public")
	priv, err := a.chat.CreatePrivateRoom(ctx, alice, "retry-private")
	if err != nil {
		t.Fatal(err)
	}
	// b holds both rooms (a mutation on b then costs one publish).
	for _, id := range []string{pub, priv.ID} {
		if _, errs := lostAnswerGQL(t, b, "alice", `query($r: ID!) { room(id: $r) { messages(last: 1) { nodes { id } } } }`, map[string]any{"r": id}); errs != nil {
			t.Fatalf("load room on b: %v", errs)
		}
	}
	msgOf := func(id string) chat.Message {
		m, ok, err := a.chat.Message(ctx, "alice", id)
		if err != nil || !ok {
			t.Fatalf("message %s on a: %v %v", id, ok, err)
		}
		return m
	}
	// listed reports whether alice's room list on a holds a room named name.
	listed := func(name string) bool {
		page, err := a.chat.Rooms(ctx, "alice", chat.Window{First: 100})
		if err != nil {
			return false
		}
		for _, r := range page.Items {
			if r.Name == name {
				return true
			}
		}
		return false
	}

	type mutation struct {
		name   string
		query  string
		vars   func() map[string]any
		stored func(vars map[string]any) bool // the change is in the log (seen on a)
	}
	var target string
	cases := []mutation{
		{"postMessage", `mutation($r: ID!) { postMessage(roomId: $r, text: "lost answer") { id } }`,
			func() map[string]any { return map[string]any{"r": pub} },
			func(map[string]any) bool {
				page, err := a.chat.Messages(ctx, pub, chat.Window{Last: 50})
				if err != nil {
					return false
				}
				for _, m := range page.Items {
					if m.Text == "lost answer" {
						return true
					}
				}
				return false
			}},
		{"react", `mutation($m: ID!) { react(messageId: $m, emoji: "👍") { id } }`,
			func() map[string]any {
				target = a.post(pub, "alice", "react to me").ID
				return map[string]any{"m": target}
			},
			func(map[string]any) bool { m := msgOf(target); return len(m.Reactions) == 1 }},
		{"editMessage", `mutation($m: ID!) { editMessage(id: $m, version: 1, text: "edited") { id } }`,
			func() map[string]any { target = a.post(pub, "alice", "edit me").ID; return map[string]any{"m": target} },
			func(map[string]any) bool { return msgOf(target).Version == 2 }},
		{"deleteMessage", `mutation($m: ID!) { deleteMessage(id: $m, version: 1) { id } }`,
			func() map[string]any {
				target = a.post(pub, "alice", "delete me").ID
				return map[string]any{"m": target}
			},
			func(map[string]any) bool { return msgOf(target).Deleted }},
		{"addMember", `mutation($r: ID!) { addMember(roomId: $r, userId: "bob") { id } }`,
			func() map[string]any { return map[string]any{"r": priv.ID} },
			func(map[string]any) bool { ok, _ := a.chat.Admits(ctx, "bob", priv.ID); return ok }},
		{"removeMember", `mutation($r: ID!) { removeMember(roomId: $r, userId: "bob") { id } }`,
			func() map[string]any { return map[string]any{"r": priv.ID} },
			func(map[string]any) bool { ok, _ := a.chat.Admits(ctx, "bob", priv.ID); return !ok }},
		{"createRoom(private)", `mutation { createRoom(name: "lost-private", private: true) { id } }`,
			func() map[string]any { return nil }, func(map[string]any) bool { return listed("lost-private") }},
		{"createRoom(public)", `mutation { createRoom(name: "lost-public") { id } }`,
			func() map[string]any { return nil }, func(map[string]any) bool { return listed("lost-public") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vars := c.vars()
			// Let b apply whatever a did in setting up, so that the
			// mutation is judged without reading the log.
			time.Sleep(300 * time.Millisecond)
			errs := loseAnswer(t, b, p, "alice", c.query, vars)
			if len(errs) == 0 {
				t.Fatalf("%s answered without error: the answer was not lost", c.name)
			}
			stored := false
			deadline := time.Now().Add(5 * time.Second)
			for !stored && time.Now().Before(deadline) {
				stored = c.stored(vars)
				if !stored {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if !stored {
				t.Fatalf("%s: %s %q and nothing stored: the proxy let nothing through", c.name, errs[0].code(), errs[0].Message)
			}
			if errs[0].code() != string(chat.CodeOutcomeUnknown) || !admitsMaybeApplied(errs[0].Message) {
				t.Errorf("%s was stored, yet answered %s %q: want %s saying it may have been stored, not a plain retry",
					c.name, errs[0].code(), errs[0].Message, chat.CodeOutcomeUnknown)
			}
		})
	}
}

// TestCreatedRoomBehindItsDirectorySaysCreated: createRoom whose
// directory entry was stored (acknowledged) but that this replica's
// directory did not apply within --apply-timeout says the room was created
// (and its ID), as a room mutation in the same spot says its event was
// stored. It said "retry shortly", and a client that retried created a
// second private room.
func TestCreatedRoomBehindItsDirectorySaysCreated(t *testing.T) {
	a, b, p := lostAnswerSetup(t)
	ctx := context.Background()
	const q = `mutation { createRoom(name: "lagged", private: true) { id } }`
	p.holdSubjects("herald-rooms.")
	_, errs := lostAnswerGQL(t, b, "alice", q, nil)
	p.releaseSubjects()
	if len(errs) == 0 {
		t.Fatal("the answer was not lost")
	}
	t.Logf("answer: %s %q", errs[0].code(), errs[0].Message)
	stored := false
	waitFor(t, "a to list the room", func() bool {
		page, err := a.chat.Rooms(ctx, "alice", chat.Window{First: 100})
		if err != nil {
			return false
		}
		for _, r := range page.Items {
			stored = stored || r.Name == "lagged"
		}
		return stored
	})
	if !strings.Contains(errs[0].Message, "was created") || strings.Contains(strings.ToLower(errs[0].Message), "retry shortly") {
		t.Errorf("createRoom was stored, yet answered %s %q: nothing says the room was created, and it invites a retry (which creates another)",
			errs[0].code(), errs[0].Message)
	}
}

// TestDisconnectAfterPublishSaysOutcomeUnknown: the connection to NATS
// drops after a post was sent and stored but before its acknowledgement
// came back. pubsub's publish reported ErrUnreachable ("NATS
// disconnected"), which means not sent (examples/articles answers it with
// "retry later"), and chat said "retry later": the answer is now
// OUTCOME_UNKNOWN.
func TestDisconnectAfterPublishSaysOutcomeUnknown(t *testing.T) {
	a, b, p := lostAnswerSetup(t)
	ctx := context.Background()
	room := a.room("cut-after-publish")
	if _, errs := lostAnswerGQL(t, b, "alice", `query($r: ID!) { room(id: $r) { messages(last: 1) { nodes { id } } } }`, map[string]any{"r": room}); errs != nil {
		t.Fatalf("load room on b: %v", errs)
	}
	p.hold()
	type answer struct{ errs []lostAnswerError }
	got := make(chan answer, 1)
	go func() {
		_, errs := lostAnswerGQL(t, b, "alice", `mutation($r: ID!) { postMessage(roomId: $r, text: "cut") { id } }`, map[string]any{"r": room})
		got <- answer{errs}
	}()
	stored := false
	waitFor(t, "a to apply the post", func() bool {
		page, err := a.chat.Messages(ctx, room, chat.Window{Last: 10})
		if err != nil {
			return false
		}
		for _, m := range page.Items {
			stored = stored || m.Text == "cut"
		}
		return stored
	})
	p.close() // b's link to NATS goes down, the acknowledgement with it
	var ans answer
	select {
	case ans = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("no answer")
	}
	if len(ans.errs) == 0 {
		t.Fatal("answered without error")
	}
	t.Logf("answer: %s %q", ans.errs[0].code(), ans.errs[0].Message)
	if ans.errs[0].code() != string(chat.CodeOutcomeUnknown) || !admitsMaybeApplied(ans.errs[0].Message) {
		t.Errorf("the post was stored, yet answered %s %q", ans.errs[0].code(), ans.errs[0].Message)
	}
}
