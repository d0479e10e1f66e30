package server

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// mxFixture is the data the matrix's operations refer to.
type mxFixture struct {
	room, private, msg1, cursor0 string
}

func mxSetUp(t *testing.T) (*replica, mxFixture) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxDepth = 6
		o.Limits.MaxComplexity = 5000
		o.Limits.MaxVariablesBytes = 300
		o.MaxBodyBytes = 4096
		o.MaxMessageBytes = 4096
	})
	var f mxFixture
	f.room = r.room("matrix")
	m0 := r.post(f.room, "alice", "zero")
	f.cursor0 = mxCursorOf(t, r, m0.ID)
	f.msg1 = r.post(f.room, "alice", "one").ID
	r.post(f.room, "alice", "two")
	pr, err := r.chat.CreatePrivateRoom(context.Background(), chat.Actor{ID: "owner"}, "secret")
	if err != nil {
		t.Fatalf("private room: %v", err)
	}
	f.private = pr.ID
	return r, f
}

func mxCursorOf(t *testing.T, r *replica, id string) string {
	out := r.mxPost(mxOp{query: `query($id: ID!) { message(id: $id) { cursor } }`, vars: map[string]any{"id": id}})
	s := out.results[0]
	i := strings.Index(s, `"cursor":"`)
	if i < 0 {
		t.Fatalf("no cursor in %s", s)
	}
	rest := s[i+len(`"cursor":"`):]
	return rest[:strings.Index(rest, `"`)]
}

var mxAll = []string{"post", "get", "ws", "legacy", "sse", "sse-get", "single", "multipart"}

// TestSameAnswerOnEveryTransport sends ~60 operations, good and bad, over
// every transport that can carry each, and requires the same GraphQL-level
// answer (data, each error's message, code, path and locations, cursors,
// in order) everywhere, modulo framing (status, error vs next+complete).
// Documented per-transport differences are left out: an oversized
// document (413/414 over HTTP, close 1009 on a socket), the variables
// limit (413 BAD_REQUEST over HTTP, LIMIT_EXCEEDED on a socket and a
// single-connection stream) and refreshSession (only a socket has a
// session). Set AUDIT_MATRIX_EXPLORE=1 to print every answer.
func TestSameAnswerOnEveryTransport(t *testing.T) {
	explore := os.Getenv("AUDIT_MATRIX_EXPLORE") != ""
	r, f := mxSetUp(t)
	deep := `{ rooms { nodes { messages { nodes { room { messages { nodes { room { name } } } } } } } } }`
	ops := []mxOp{
		{name: "q-rooms", query: `{ rooms(first: 1) { nodes { name } } }`},
		{name: "q-room", query: `query($id: ID!) { room(id: $id) { name messageCount } }`, vars: map[string]any{"id": f.room}},
		{name: "q-room-missing", query: `query($id: ID!) { room(id: $id) { name } }`, vars: map[string]any{"id": "nope"}},
		{name: "q-private-anon", query: `query($id: ID!) { room(id: $id) { name } }`, vars: map[string]any{"id": f.private}},
		{name: "q-partial", query: `query($a: ID!, $b: ID!) { a: room(id: $a) { name } b: room(id: $b) { name } }`, vars: map[string]any{"a": f.room, "b": f.private}},
		{name: "q-syntax", query: `{ rooms { `},
		{name: "q-unknown-field", query: `{ roomz }`},
		{name: "q-bad-var", query: `query($f: Int) { rooms(first: $f) { nodes { id } } }`, vars: map[string]any{"f": "2"}},
		{name: "q-missing-var", query: `query($id: ID!) { room(id: $id) { id } }`},
		{name: "q-wrong-opname", query: `query A { rooms(first: 1) { nodes { id } } } query B { viewer { id } }`, operationName: "C"},
		{name: "q-no-opname", query: `query A { rooms(first: 1) { nodes { id } } } query B { viewer { id } }`},
		{name: "q-opname-B", query: `query A { rooms(first: 1) { nodes { id } } } query B { viewer { id } }`, operationName: "B", user: "carol"},
		{name: "q-too-deep", query: deep},
		{name: "q-too-complex", query: `{ rooms(first: 100) { nodes { messages(first: 100) { nodes { id } } } } }`},
		{name: "q-int-overflow", query: `{ rooms(first: 3000000000) { nodes { id } } }`},
		{name: "q-defer", query: `{ rooms(first: 1) { ... @defer { nodes { id } } } }`},
		{name: "q-apq-miss", query: "", extensions: map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("ab", 32)}}},
		{name: "q-apq-mismatch", query: `{ rooms(first: 1) { nodes { id } } }`, extensions: map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("ab", 32)}}},
		{name: "q-oversized", query: `{ rooms(first: 1) { nodes { id } } }` + strings.Repeat(" ", 5000)},
		{name: "q-vars-too-big", query: `query($id: ID!) { room(id: $id) { id } }`, vars: map[string]any{"id": strings.Repeat("x", 400)}},
		{name: "q-fragment-unused", query: `{ rooms(first: 1) { nodes { id } } } fragment F on Room { id }`},
		{name: "m-typing", query: `mutation($r: ID!) { setTyping(roomId: $r) }`, vars: map[string]any{"r": f.room}, user: "alice"},
		{name: "m-post-idem", query: `mutation($r: ID!) { postMessage(roomId: $r, text: "idem", idempotencyKey: "k1") { text author { id } } }`, vars: map[string]any{"r": f.room}, user: "alice"},
		{name: "m-not-found", query: `mutation { postMessage(roomId: "nope", text: "x") { id } }`, user: "alice"},
		{name: "m-forbidden", query: `mutation($r: ID!) { postMessage(roomId: $r, text: "x") { id } }`, vars: map[string]any{"r": f.private}, user: "mallory"},
		{name: "m-bad-input", query: `mutation($r: ID!) { postMessage(roomId: $r, text: "   ") { id } }`, vars: map[string]any{"r": f.room}, user: "alice"},
		{name: "m-unauth", query: `mutation($r: ID!) { postMessage(roomId: $r, text: "x") { id } }`, vars: map[string]any{"r": f.room}},
		{name: "m-conflict", query: `mutation($id: ID!) { editMessage(id: $id, version: 99, text: "x") { id } }`, vars: map[string]any{"id": f.msg1}, user: "alice"},
		{name: "m-two-one-fails", query: `mutation($r: ID!) { a: setTyping(roomId: $r) b: postMessage(roomId: "nope", text: "x") { id } }`, vars: map[string]any{"r": f.room}, user: "alice"},
		{name: "m-refresh", query: `mutation { refreshSession(token: "alice") { user { id } } }`, user: "alice"},
		{name: "s-replay", query: postedSub, vars: map[string]any{"r": f.room, "after": f.cursor0}, take: 2},
		{name: "s-missing-room", query: postedSub, vars: map[string]any{"r": "nope"}},
		{name: "s-private-anon", query: postedSub, vars: map[string]any{"r": f.private}},
		{name: "s-private-nonmember", query: postedSub, vars: map[string]any{"r": f.private}, user: "mallory"},
		{name: "s-bad-cursor", query: postedSub, vars: map[string]any{"r": f.room, "after": "garbage"}},
		{name: "s-two-roots", query: `subscription($r: ID!) { messagePosted(roomId: $r) { id } roomCreated { id } }`, vars: map[string]any{"r": f.room}},
		{name: "s-skip", query: `subscription($r: ID!) { messagePosted(roomId: $r) @skip(if: false) { id } }`, vars: map[string]any{"r": f.room}},
		{name: "s-unknown-field", query: `subscription($r: ID!) { messagePosted(roomId: $r) { nope } }`, vars: map[string]any{"r": f.room}},
		{name: "s-too-deep", query: `subscription($r: ID!) { messagePosted(roomId: $r) { room { messages { nodes { room { messages { nodes { id } } } } } } } }`, vars: map[string]any{"r": f.room}},
		{name: "s-missing-var", query: postedSub},
		{name: "s-private-resume-nonmember", query: postedSub, vars: map[string]any{"r": f.private, "after": f.cursor0}, user: "mallory"},
		{name: "s-roomevents-nonmember", query: `subscription($r: ID!) { roomEvents(roomId: $r) { kind } }`, vars: map[string]any{"r": f.private}, user: "mallory"},
		{name: "s-nested-error", query: `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text room { messages(first: -1) { nodes { id } } } } }`, vars: map[string]any{"r": f.room, "after": f.cursor0}, take: 1},
		{name: "s-typename-root", query: `subscription { __typename }`},
		{name: "mixed-opname-S", query: `query Q { rooms(first: 1) { nodes { name } } } subscription S($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`, operationName: "S", vars: map[string]any{"r": f.room, "after": f.cursor0}, take: 1},
		{name: "mixed-opname-Q", query: `query Q { rooms(first: 1) { nodes { name } } } subscription S($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`, operationName: "Q", vars: map[string]any{"r": f.room, "after": f.cursor0}},
		{name: "mixed-sub-first-Q", query: `subscription S($r: ID!) { messagePosted(roomId: $r) { text } } query Q { rooms(first: 1) { nodes { name } } }`, operationName: "Q", vars: map[string]any{"r": f.room}},
		{name: "mixed-mut-Q", query: `mutation M { setTyping(roomId: "x") } query Q { rooms(first: 1) { nodes { name } } }`, operationName: "Q", user: "alice"},
		{name: "mixed-noname", query: `query Q { rooms(first: 1) { nodes { name } } } subscription S { roomCreated { id } }`},
		{name: "mixed-wrongname", query: `query Q { rooms(first: 1) { nodes { name } } } subscription S { roomCreated { id } }`, operationName: "Z"},
		{name: "q-null-required", query: `query($id: ID!) { room(id: $id) { id } }`, vars: map[string]any{"id": nil}},
		{name: "q-extra-var", query: `{ rooms(first: 1) { nodes { name } } }`, vars: map[string]any{"zzz": 1}},
		{name: "q-introspect", query: `{ __type(name: "Room") { name } }`},
		{name: "q-field-error-nested", query: `query($r: ID!) { room(id: $r) { name messages(first: -1) { nodes { id } } } }`, vars: map[string]any{"r": f.room}},
		{name: "q-alias-conflict", query: `{ rooms(first: 1) { a: nodes { id } a: nodes { name } } }`},
		{name: "q-empty-doc", query: `   `},
		{name: "q-only-fragment", query: `fragment F on Room { id }`},
		{name: "m-burst", query: `mutation($r: ID!) { a: setTyping(roomId: $r) b: setTyping(roomId: $r) c: setTyping(roomId: $r) d: setTyping(roomId: $r) }`, vars: map[string]any{"r": f.room}, user: "burst"},
	}
	only := os.Getenv("AUDIT_MATRIX_ONLY")
	for _, op := range ops {
		if only != "" && !strings.Contains(","+only+",", ","+op.name+",") {
			continue
		}
		transports := mxAll
		switch {
		case strings.HasPrefix(op.name, "s-") || op.name == "mixed-opname-S":
			transports = mxSubTransports
		case strings.HasPrefix(op.name, "m-"):
			transports = []string{"post", "ws", "legacy", "sse", "single", "multipart"}
		}
		outs := r.mxRunAll(op, transports)
		if explore {
			t.Logf("=== %s", op.name)
		}
		first := ""
		for i, o := range outs {
			var gql []string
			for _, res := range o.results {
				gql = append(gql, mxGQL(res))
			}
			got := strings.Join(gql, " ;; ")
			if explore {
				t.Logf("  %-9s st=%d end=%q %s || %s", o.transport, o.status, o.end, got, o.note)
			}
			switch op.name {
			case "q-oversized", "q-vars-too-big", "m-refresh":
				continue // documented per-transport answers
			}
			if got == "" {
				t.Errorf("%s over %s: no result (%v)", op.name, o.transport, o)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Errorf("%s: %s answered\n  %s\nbut %s answered\n  %s", op.name, outs[0].transport, first, o.transport, got)
			}
		}
	}
}
