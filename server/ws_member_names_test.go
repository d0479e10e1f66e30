package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWSMembersMatchedByExactName: a message's members are read by their
// exact names, as the protocols' JSON.parse-based peers read them and as
// the HTTP transports read a request's. encoding/json matches a struct's
// fields case-insensitively, taking the last of "query" and "QUERY" for
// the query, "ID" for the id and "Type" for the type: the same operation
// ran one query over HTTP and another over WebSocket, was answered under an
// id the client never gave, and a message without a type was acknowledged.
func TestWSMembersMatchedByExactName(t *testing.T) {
	r := newReplica(t, nil)

	// Over HTTP, the body's "query" member is the query.
	body := `{"query":"{ viewer { id } }","QUERY":"{ viewer { name } }"}`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/graphql", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Herald-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", body, err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wspSameJSON(t, string(got), `{"data":{"viewer":{"id":"alice"}}}`)

	for _, p := range wspProtocols {
		t.Run(p.name+"/query is the query member", func(t *testing.T) {
			r := r.forTest(t)
			c := p.dial(r, "alice")
			c.sendRaw(`{"id":"q","type":"` + p.start + `","payload":{"query":"{ viewer { id } }","QUERY":"{ viewer { name } }"}}`)
			f := wspExpect(c, p.next, "q")
			if string(f.Payload) != `{"data":{"viewer":{"id":"alice"}}}` {
				t.Fatalf("got %s, want the result of the payload's \"query\" member, { viewer { id } }, as over HTTP", f.raw)
			}
			wspExpectComplete(c, "q")
		})
		t.Run(p.name+"/variables are the variables member", func(t *testing.T) {
			r := r.forTest(t)
			first, second := r.room("first-"+p.name), r.room("second-"+p.name)
			c := p.dial(r, "alice")
			c.sendRaw(`{"id":"q","type":"` + p.start + `","payload":{"query":"query($r: ID!) { room(id: $r) { name } }","variables":{"r":"` + first + `"},"Variables":{"r":"` + second + `"}}}`)
			f := wspExpect(c, p.next, "q")
			if !strings.Contains(string(f.Payload), `"first-`) {
				t.Fatalf("got %s, want room \"first-%s\", the \"variables\" member's", f.raw, p.name)
			}
		})
		t.Run(p.name+"/the last of duplicate variables members is the variables", func(t *testing.T) {
			// As JSON.parse and the HTTP transports read it: the second
			// object replaces the first, it is not merged into it.
			r := r.forTest(t)
			first := r.room("dup-" + p.name)
			c := p.dial(r, "alice")
			c.sendRaw(`{"id":"q","type":"` + p.start + `","payload":{"query":"query($r: ID!) { room(id: $r) { name } }","variables":{"r":"` + first + `"},"variables":{}}}`)
			f := wspFrame(c, "ka")
			if f.ID != "q" || strings.Contains(string(f.Payload), `"dup-`) {
				t.Fatalf("got %s, want $r undefined: the last \"variables\" member is {}", f.raw)
			}
		})
		t.Run(p.name+"/id is the id member", func(t *testing.T) {
			r := r.forTest(t)
			c := p.dial(r, "alice")
			c.sendRaw(`{"id":"a","ID":"b","type":"` + p.start + `","payload":{"query":"{ viewer { id } }"}}`)
			f := wspFrame(c, "ka")
			if f.ID != "a" {
				t.Fatalf("got %s, want the answer under the message's id \"a\"", f.raw)
			}
		})
		t.Run(p.name+"/Type is not type", func(t *testing.T) {
			r := r.forTest(t)
			c := r.dial(p.name)
			c.sendRaw(`{"Type":"connection_init"}`)
			reason, _ := wspExpectClose(c, closeBadRequest, 3*time.Second)
			if !strings.HasPrefix(reason, "Invalid message") {
				t.Fatalf("close reason %q", reason)
			}
		})
	}
}
