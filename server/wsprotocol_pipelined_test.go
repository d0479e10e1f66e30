package server

import (
	"testing"
)

// TestProtocolPipelined: subscriptions-transport-ws's client sends
// connection_init and its queued starts at once, without waiting for the
// ack ("no need to wait for connection to success"); graphql-ws-like
// clients may pipeline too. Every operation must be answered (queries run
// concurrently, so in any order), each with its result then complete.
func TestProtocolPipelined(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			c := r.dial(p.name)
			c.init("alice")
			ids := []string{"1", "2", "3"}
			for _, id := range ids {
				c.subscribe(p.start, id, wspViewerQuery, nil)
			}
			c.expectType("connection_ack")
			seen := map[string][]string{}
			for done := 0; done < len(ids); {
				f := wspFrame(c, "ka")
				seen[f.ID] = append(seen[f.ID], f.Type)
				if f.Type == p.next {
					wspSameJSON(t, string(f.Payload), `{"data":{"viewer":{"id":"alice","name":"alice"}}}`)
				}
				if f.Type == "complete" {
					done++
				}
			}
			for _, id := range ids {
				if got := seen[id]; len(got) != 2 || got[0] != p.next || got[1] != "complete" {
					t.Errorf("id %s: frames %v, want [%s complete]", id, got, p.next)
				}
			}
			wspQuiet(c, p, wspSilence, "alice")
		})
	}
}
