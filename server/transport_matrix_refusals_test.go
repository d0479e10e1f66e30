package server

import (
	"encoding/json"
	"testing"
)

// mxSubTransports are the transports that carry a subscription.
var mxSubTransports = []string{"ws", "legacy", "sse", "sse-get", "single", "multipart"}

// mxResult is one decoded GraphQL result.
type mxResult struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Locations  []any          `json:"locations"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func mxDecode(t *testing.T, s string) mxResult {
	t.Helper()
	var r mxResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("result %s: %v", s, err)
	}
	return r
}

// TestEventFieldErrorPathStartsAtTheRootField: a field error inside a
// subscription event must be reported as the same selection is in a query:
// its path starts at the response's root (the subscription's root field,
// "messagePosted"), and a null in a non-null position propagates, so a
// failing non-null messages → room → messagePosted (Message!) leaves
// "data": null (GraphQL spec, "Handling Execution Errors" and "Response
// Format: path"). The same selection through the query `message(id)`
// reports path ["message","room","messages"] on every transport. On every
// subscription transport the event arrived as
// {"data":{"messagePosted":null},"errors":[{"path":["room","messages"],...}]}:
// a path that named nothing in data and a null for a non-null field.
func TestEventFieldErrorPathStartsAtTheRootField(t *testing.T) {
	r, f := mxSetUp(t)

	// The query form of the same selection, for reference.
	q := r.mxPost(mxOp{query: `query($id: ID!) { message(id: $id) { text room { messages(first: -1) { nodes { id } } } } }`,
		vars: map[string]any{"id": f.msg1}})
	qr := mxDecode(t, q.results[0])
	if len(qr.Errors) != 1 || len(qr.Errors[0].Path) != 3 || qr.Errors[0].Path[0] != "message" {
		t.Fatalf("query reference: %v", q)
	}

	op := mxOp{
		query: `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text room { messages(first: -1) { nodes { id } } } } }`,
		vars:  map[string]any{"r": f.room, "after": f.cursor0},
		take:  1,
	}
	for _, out := range r.mxRunAll(op, mxSubTransports) {
		t.Run(out.transport, func(t *testing.T) {
			if len(out.results) != 1 {
				t.Fatalf("want one event, got %v", out)
			}
			res := mxDecode(t, out.results[0])
			if len(res.Errors) != 1 {
				t.Fatalf("want one error in %s", out.results[0])
			}
			e := res.Errors[0]
			want := []any{"messagePosted", "room", "messages"}
			if len(e.Path) != len(want) || e.Path[0] != want[0] || e.Path[1] != want[1] || e.Path[2] != want[2] {
				t.Errorf("error path = %v, want %v (the query form says %v); result %s", e.Path, want, qr.Errors[0].Path, out.results[0])
			}
			if string(res.Data) != "null" {
				t.Errorf("data = %s, want null: messagePosted is Message! and its non-null room.messages failed; result %s", res.Data, out.results[0])
			}
		})
	}
}

// TestNonMemberSubscriptionRefusalNamesTheRoom: a non-member subscribing
// to a private room is refused as README's "Private rooms" promises for
// everything on it, "on every transport": FORBIDDEN, "whose message names
// nothing but the ID they gave" — as the query room(id) and the mutation
// postMessage are refused ("forbidden: you are not a member of room <id>",
// path and locations of the field). And it should be refused as the
// subscription's other source-stream refusals are (a missing room:
// NOT_FOUND on path ["messagePosted"], a result then complete). Instead,
// on every transport, the subscription is first accepted into the shared
// execution and then ended by the gate with "forbidden: access to this
// subscription's events was withdrawn" (access the user never had), no
// room ID, no path, no locations, and on graphql-transport-ws as an
// `error` message where NOT_FOUND is a `next` then `complete`.
func TestNonMemberSubscriptionRefusalNamesTheRoom(t *testing.T) {
	r, f := mxSetUp(t)

	q := r.mxPost(mxOp{query: `query($id: ID!) { room(id: $id) { name } }`, vars: map[string]any{"id": f.private}, user: "mallory"})
	qr := mxDecode(t, q.results[0])
	if len(qr.Errors) != 1 {
		t.Fatalf("query reference: %v", q)
	}
	wantMsg := qr.Errors[0].Message // "forbidden: you are not a member of room <id>"

	for _, c := range []struct {
		name string
		vars map[string]any
	}{
		{"live", map[string]any{"r": f.private}},
		{"resume", map[string]any{"r": f.private, "after": f.cursor0}},
	} {
		op := mxOp{query: postedSub, vars: c.vars, user: "mallory"}
		for _, out := range r.mxRunAll(op, mxSubTransports) {
			t.Run(c.name+"/"+out.transport, func(t *testing.T) {
				if len(out.results) != 1 {
					t.Fatalf("want one result, got %v", out)
				}
				res := mxDecode(t, out.results[0])
				if len(res.Errors) != 1 || res.Errors[0].Extensions["code"] != "FORBIDDEN" {
					t.Fatalf("want one FORBIDDEN error, got %s", out.results[0])
				}
				e := res.Errors[0]
				if e.Message != wantMsg {
					t.Errorf("message = %q, want %q as the query and mutations say", e.Message, wantMsg)
				}
				if len(e.Path) != 1 || e.Path[0] != "messagePosted" {
					t.Errorf("path = %v, want [messagePosted] as a missing room's NOT_FOUND has", e.Path)
				}
			})
		}
	}
}
