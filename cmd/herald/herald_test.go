package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// stateQuery reads the whole of a small state: pages of 10, so that its
// complexity (a page's selections count once per item it may hold) stays
// within the default --max-complexity.
const stateQuery = `{
  rooms(first: 10) { totalCount nodes { id name createdBy { id } messageCount lastMessageAt createdAt
    messages(last: 10) { totalCount nodes { id text version deleted author { id name } editedAt createdAt cursor
      reactions { emoji count } } } } }
}`

type roomData struct {
	ID string `json:"id"`
}

type messageData struct {
	ID        string `json:"id"`
	Text      string `json:"text"`
	Version   int    `json:"version"`
	Deleted   bool   `json:"deleted"`
	Reactions []struct {
		Emoji            string `json:"emoji"`
		Count            int    `json:"count"`
		ViewerHasReacted bool   `json:"viewerHasReacted"`
	} `json:"reactions"`
	Room struct {
		MessageCount int `json:"messageCount"`
	} `json:"room"`
}

func createRoom(t *testing.T, addr, user, name string) string {
	t.Helper()
	var out struct{ CreateRoom roomData }
	gql(t, addr, user, `mutation($n: String!) { createRoom(name: $n) { id } }`, map[string]any{"n": name}, &out)
	return out.CreateRoom.ID
}

func postMessage(t *testing.T, addr, user, room, text string) messageData {
	t.Helper()
	var out struct{ PostMessage messageData }
	gql(t, addr, user, `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id text version room { messageCount } } }`,
		map[string]any{"r": room, "t": text}, &out)
	return out.PostMessage
}

// TestMutationsPersistAcrossRestart creates a room, posts, edits and reacts,
// reads it all back, restarts on the same data dir and finds it identical.
func TestMutationsPersistAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	a := startTestApp(t, cfg)

	room := createRoom(t, a.Addr(), "alice", "general")
	first := postMessage(t, a.Addr(), "alice", room, "hello")
	if first.Version != 1 || first.Room.MessageCount != 1 {
		t.Fatalf("posted %+v: read-your-writes broken", first)
	}
	postMessage(t, a.Addr(), "bob", room, "hi alice")

	var edit struct{ EditMessage messageData }
	gql(t, a.Addr(), "alice", `mutation($id: ID!) { editMessage(id: $id, version: 1, text: "hello, world") { id text version } }`,
		map[string]any{"id": first.ID}, &edit)
	if edit.EditMessage.Text != "hello, world" || edit.EditMessage.Version != 2 {
		t.Fatalf("edit = %+v", edit.EditMessage)
	}
	var react struct{ React messageData }
	gql(t, a.Addr(), "bob", `mutation($id: ID!) { react(messageId: $id, emoji: "👍") { reactions { emoji count viewerHasReacted } } }`,
		map[string]any{"id": first.ID}, &react)
	if r := react.React.Reactions; len(r) != 1 || r[0].Emoji != "👍" || r[0].Count != 1 || !r[0].ViewerHasReacted {
		t.Fatalf("reactions = %+v", r)
	}

	var msg struct{ Message messageData }
	gql(t, a.Addr(), "", `query($id: ID!) { message(id: $id) { text version reactions { emoji count viewerHasReacted } } }`,
		map[string]any{"id": first.ID}, &msg)
	if msg.Message.Text != "hello, world" || len(msg.Message.Reactions) != 1 || msg.Message.Reactions[0].ViewerHasReacted {
		t.Fatalf("queried message = %+v (anonymous viewer has not reacted)", msg.Message)
	}

	before := gql(t, a.Addr(), "", stateQuery, nil, nil)
	if len(before.Errors) > 0 {
		t.Fatalf("state query: %+v", before.Errors)
	}
	stopTestApp(t, a)

	b := startTestApp(t, testConfig(t, dir))
	after := gql(t, b.Addr(), "", stateQuery, nil, nil)
	if !bytes.Equal(before.Data, after.Data) {
		t.Fatalf("state changed across restart:\nbefore %s\nafter  %s", before.Data, after.Data)
	}
	if !strings.Contains(string(after.Data), "hello, world") || !strings.Contains(string(after.Data), "hi alice") {
		t.Fatalf("state after restart lacks the messages: %s", after.Data)
	}
	// The restarted replica replayed nothing at start: the state query
	// loaded the one room it touched, and holds it.
	resp, err := http.Get("http://" + b.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"herald_rooms_held 1\n", "herald_room_load_seconds_count 1\n", "herald_live_subscriptions 1\n", "herald_room_evictions_total 0\n"} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
}

func TestIdempotentPostIsStoredOnce(t *testing.T) {
	a := startTestApp(t, testConfig(t, t.TempDir()))
	room := createRoom(t, a.Addr(), "alice", "general")
	post := func(user, key string) messageData {
		var out struct{ PostMessage messageData }
		gql(t, a.Addr(), user, `mutation($r: ID!, $k: String) { postMessage(roomId: $r, text: "once", idempotencyKey: $k) { id room { messageCount } } }`,
			map[string]any{"r": room, "k": key}, &out)
		return out.PostMessage
	}
	first, retry := post("alice", "k1"), post("alice", "k1")
	if first.ID != retry.ID {
		t.Fatalf("retried post stored twice: %s and %s", first.ID, retry.ID)
	}
	if retry.Room.MessageCount != 1 {
		t.Fatalf("messageCount = %d after a retried post, want 1", retry.Room.MessageCount)
	}
	if other := post("alice", "k2"); other.ID == first.ID || other.Room.MessageCount != 2 {
		t.Fatalf("a new key must store a new post: %+v", other)
	}
	if bobs := post("bob", "k1"); bobs.ID == first.ID {
		t.Fatal("the same key from another author must not be taken as a retry")
	}
}

func TestMutationRejections(t *testing.T) {
	a := startTestApp(t, testConfig(t, t.TempDir()))
	room := createRoom(t, a.Addr(), "alice", "general")
	msg := postMessage(t, a.Addr(), "alice", room, "hello")
	gql(t, a.Addr(), "alice", `mutation($id: ID!) { editMessage(id: $id, version: 1, text: "v2") { id } }`, map[string]any{"id": msg.ID}, &struct{}{})

	tests := []struct {
		name, user, query string
		vars              map[string]any
		code              string
	}{
		{"stale version", "alice", `mutation($id: ID!) { editMessage(id: $id, version: 1, text: "again") { id } }`, map[string]any{"id": msg.ID}, "CONFLICT"},
		{"stale delete", "alice", `mutation($id: ID!) { deleteMessage(id: $id, version: 1) { id } }`, map[string]any{"id": msg.ID}, "CONFLICT"},
		{"edit by another", "bob", `mutation($id: ID!) { editMessage(id: $id, version: 2, text: "mine") { id } }`, map[string]any{"id": msg.ID}, "FORBIDDEN"},
		{"delete by another", "bob", `mutation($id: ID!) { deleteMessage(id: $id, version: 2) { id } }`, map[string]any{"id": msg.ID}, "FORBIDDEN"},
		{"anonymous post", "", `mutation($r: ID!) { postMessage(roomId: $r, text: "x") { id } }`, map[string]any{"r": room}, "UNAUTHENTICATED"},
		{"unknown room", "alice", `mutation { postMessage(roomId: "rnope", text: "x") { id } }`, nil, "NOT_FOUND"},
		{"malformed room id", "alice", `mutation { postMessage(roomId: "../x", text: "x") { id } }`, nil, "NOT_FOUND"},
		{"unknown message", "alice", `mutation { editMessage(id: "rnope_mnope", version: 1, text: "x") { id } }`, nil, "NOT_FOUND"},
		{"empty text", "alice", `mutation($r: ID!) { postMessage(roomId: $r, text: "   ") { id } }`, map[string]any{"r": room}, "BAD_USER_INPUT"},
		{"over-long text", "alice", `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`, map[string]any{"r": room, "t": strings.Repeat("x", 4001)}, "BAD_USER_INPUT"},
		{"duplicate room", "bob", `mutation { createRoom(name: "General") { id } }`, nil, "CONFLICT"},
		{"bad cursor", "", `{ rooms(after: "garbage!") { totalCount } }`, nil, "BAD_USER_INPUT"},
		{"page too big", "", `{ rooms(first: 1000) { totalCount } }`, nil, "BAD_USER_INPUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := gql(t, a.Addr(), tt.user, tt.query, tt.vars, nil)
			if r.code() != tt.code {
				t.Fatalf("errors = %+v, want code %s", r.Errors, tt.code)
			}
		})
	}
	var out struct{ Message messageData }
	gql(t, a.Addr(), "", `query($id: ID!) { message(id: $id) { text version } }`, map[string]any{"id": msg.ID}, &out)
	if out.Message.Text != "v2" || out.Message.Version != 2 {
		t.Fatalf("a rejected mutation changed the message: %+v", out.Message)
	}
}

func TestPagination(t *testing.T) {
	a := startTestApp(t, testConfig(t, t.TempDir()))
	room := createRoom(t, a.Addr(), "alice", "general")
	for i := range 5 {
		postMessage(t, a.Addr(), "alice", room, string(rune('a'+i)))
	}
	type page struct {
		Room struct {
			Messages struct {
				Nodes    []struct{ Text string }
				PageInfo struct {
					HasNextPage, HasPreviousPage bool
					StartCursor, EndCursor       *string
				}
			}
		}
	}
	texts := func(p page) string {
		var s string
		for _, n := range p.Room.Messages.Nodes {
			s += n.Text
		}
		return s
	}
	q := `query($r: ID!, $last: Int, $before: String, $first: Int, $after: String) {
	  room(id: $r) { messages(last: $last, before: $before, first: $first, after: $after) {
	    nodes { text } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`
	var latest page
	gql(t, a.Addr(), "", q, map[string]any{"r": room, "last": 2}, &latest)
	if texts(latest) != "de" || !latest.Room.Messages.PageInfo.HasPreviousPage || latest.Room.Messages.PageInfo.HasNextPage {
		t.Fatalf("last 2 = %q %+v", texts(latest), latest.Room.Messages.PageInfo)
	}
	var older page
	gql(t, a.Addr(), "", q, map[string]any{"r": room, "last": 2, "before": *latest.Room.Messages.PageInfo.StartCursor}, &older)
	if texts(older) != "bc" {
		t.Fatalf("2 before = %q", texts(older))
	}
	var forward page
	gql(t, a.Addr(), "", q, map[string]any{"r": room, "first": 10, "after": *older.Room.Messages.PageInfo.EndCursor}, &forward)
	if texts(forward) != "de" || forward.Room.Messages.PageInfo.HasNextPage {
		t.Fatalf("after c = %q", texts(forward))
	}
	var none page
	gql(t, a.Addr(), "", q, map[string]any{"r": room, "first": 0}, &none)
	if texts(none) != "" || !none.Room.Messages.PageInfo.HasNextPage {
		t.Fatalf("first 0 = %q %+v", texts(none), none.Room.Messages.PageInfo)
	}
}

// TestTwoReplicasShareNATS runs one replica with embedded NATS listening on
// TCP and a second that joins it with --nats-url.
func TestTwoReplicasShareNATS(t *testing.T) {
	cfgA := testConfig(t, t.TempDir())
	cfgA.NATSListen = freeAddr(t)
	a := startTestApp(t, cfgA)

	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURLs = []string{a.log.ClientURL()}
	b := startTestApp(t, cfgB)

	room := createRoom(t, b.Addr(), "alice", "general")
	msg := postMessage(t, b.Addr(), "alice", room, "from b")
	if msg.Room.MessageCount != 1 {
		t.Fatalf("replica b does not see its own write at once: %+v", msg)
	}
	seeOn := func(addr, id, text string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var out struct{ Message *messageData }
			gql(t, addr, "", `query($id: ID!) { message(id: $id) { text } }`, map[string]any{"id": id}, &out)
			if out.Message != nil && out.Message.Text == text {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %s with %q not visible on %s after 5s", id, text, addr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	seeOn(a.Addr(), msg.ID, "from b")
	other := postMessage(t, a.Addr(), "bob", room, "from a")
	if other.Room.MessageCount != 2 {
		t.Fatalf("replica a: messageCount = %d right after its write, want 2", other.Room.MessageCount)
	}
	seeOn(b.Addr(), other.ID, "from a")

	// Every replica judges identically: the name is taken on both.
	if r := gql(t, a.Addr(), "bob", `mutation { createRoom(name: "GENERAL") { id } }`, nil, nil); r.code() != "CONFLICT" {
		t.Fatalf("duplicate room on the other replica: %+v", r.Errors)
	}
}

// TestBadHTTPInput sends malformed requests to a real replica: each gets the
// right status and a GraphQL error body, and the replica keeps serving.
func TestBadHTTPInput(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBodyBytes = 4096
	a := startTestApp(t, cfg)
	base := "http://" + a.Addr() + "/graphql"
	tests := []struct {
		name, method, url, accept, body string
		status                          int
	}{
		{"malformed JSON", "POST", base, "", `{"query": `, 400},
		{"unknown field, graphql-response+json", "POST", base, "application/graphql-response+json", `{"query":"{ nope }"}`, 400},
		{"unknown field, json", "POST", base, "application/json", `{"query":"{ nope }"}`, 200},
		{"missing variable", "POST", base, "application/graphql-response+json", `{"query":"query($id: ID!) { room(id: $id) { id } }"}`, 400},
		{"oversized body", "POST", base, "", `{"query":"` + strings.Repeat(" ", 5000) + `{ viewer { id } }"}`, 413},
		{"mutation via GET", "GET", base + "?query=" + url.QueryEscape(`mutation { createRoom(name: "x") { id } }`), "", "", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tt.url, strings.NewReader(tt.body))
			if tt.method == "POST" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.status, raw)
			}
			var body gqlResponse
			if err := json.Unmarshal(raw, &body); err != nil || len(body.Errors) == 0 || body.Errors[0].Message == "" {
				t.Fatalf("body %s is not a GraphQL error response", raw)
			}
			if len(body.Data) != 0 {
				t.Fatalf("request error carries data: %s", raw)
			}
		})
	}
	var ok struct{ Rooms struct{ TotalCount int } }
	gql(t, a.Addr(), "", `{ rooms { totalCount } }`, nil, &ok)
	var viaGet gqlResponse
	resp, err := http.Get(base + "?query=" + url.QueryEscape(`{ rooms { totalCount } }`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&viaGet); err != nil || resp.StatusCode != 200 || len(viaGet.Errors) > 0 {
		t.Fatalf("GET query after bad input: %d %+v %v", resp.StatusCode, viaGet, err)
	}
}
