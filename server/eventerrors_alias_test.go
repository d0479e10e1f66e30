package server

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestEventErrorPathUsesAliases: a field error in a subscription event is
// reported as in a query: its path starts at the root field's response
// name (an alias here), and a null that reaches the non-null root field
// (messagePosted: Message!) makes data null. graphql-js 16 answers this
// document's event with
//
//	{"errors":[{"message":"first must be between 0 and 100, got -1",
//	  "locations":[{"line":1,"column":91}],"path":["m","r","msgs"]}],"data":null}
//
// Herald's event dropped the root from the path (["r","msgs"], a path that
// leads nowhere in the response) and answered data {"m":null}, a null where
// the schema promises a Message.
func TestEventErrorPathUsesAliases(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	c := r.dialTransport("")
	c.subscribe("subscribe", "1",
		`subscription($r: ID!) { m: messagePosted(roomId: $r) { __typename id r: room { __typename msgs: messages(first: -1) { totalCount } } } }`,
		map[string]any{"r": room})
	waitFor(t, "the subscription to join", func() bool { return r.members() == 1 })
	r.post(room, "alice", "hello")
	f := c.next()
	var p struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Path []any `json:"path"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Errors) != 1 {
		t.Fatalf("got %s, want exactly one error", f.raw)
	}
	if got := fmt.Sprint(p.Errors[0].Path); got != "[m r msgs]" {
		t.Errorf("error path %s, want [m r msgs] (graphql-js); event %s", got, f.raw)
	}
	if string(p.Data) != "null" {
		t.Errorf("data %s, want null: the error propagates through the non-null Message.room and Subscription.messagePosted", p.Data)
	}
}
