package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// collectUntilEnd reads subscription id's results on c until it ends, returning
// the message numbers it received and how it ended.
func collectUntilEnd(c *wsClient, id string) (got []int, end string) {
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			return got, "read: " + err.Error()
		}
		if f.keepalive() || f.ID != id {
			continue
		}
		switch f.Type {
		case "next", "data":
			var p struct {
				Data struct{ MessagePosted struct{ Text string } }
			}
			if err := json.Unmarshal(f.Payload, &p); err != nil {
				return got, "bad payload " + f.raw
			}
			n, err := strconv.Atoi(strings.TrimPrefix(p.Data.MessagePosted.Text, "m"))
			if err != nil {
				return got, "payload " + f.raw
			}
			got = append(got, n)
		case "error":
			return got, "error " + string(f.Payload)
		default:
			return got, f.Type
		}
	}
}

// TestRemovedMemberGetsNothingAfterRemoval: bob, sharing ann's
// execution of a private room (live, and resumed), is removed while ann
// posts (and, readded, added again a few posts later); his subscriptions
// must get no message posted after his removal, and end with FORBIDDEN.
func TestRemovedMemberGetsNothingAfterRemoval(t *testing.T) {
	r := newReplica(t, nil)
	const total = 60
	for _, readd := range []bool{false, true} {
		for iter := range 6 {
			t.Run(fmt.Sprintf("readd=%v/%d", readd, iter), func(t *testing.T) {
				r := r.forTest(t)
				waitFor(t, "earlier subscriptions to end", func() bool { return r.members() == 0 })
				room := r.privateRoom(fmt.Sprintf("p%v%d", readd, iter), "bob")
				annC := r.dialTransport("ann")
				annC.subscribe("subscribe", "s", privPosted, map[string]any{"r": room})
				waitFor(t, "ann's subscription", func() bool { return r.members() == 1 })
				r.post(room, "ann", "m-01")
				var cursor string
				for cursor == "" {
					f := annC.next()
					if f.ID == "s" && f.Type == "next" {
						var p struct{ Extensions struct{ Cursor string } }
						_ = json.Unmarshal(f.Payload, &p)
						cursor = p.Extensions.Cursor
					}
				}
				liveBob := r.dialTransport("bob")
				liveBob.subscribe("subscribe", "s", privPosted, map[string]any{"r": room})
				resBob := r.dialLegacy("bob")
				resBob.subscribe("start", "s", privPosted, map[string]any{"r": room, "after": cursor})
				waitFor(t, "bob's subscriptions", func() bool { return r.members() == 3 })
				removeAt := 10 + iter*7
				var posting sync.WaitGroup
				posting.Go(func() {
					ctx := context.Background()
					for i := range total {
						if _, err := r.chat.PostMessage(ctx, chatActor("ann"), room, fmt.Sprintf("m%03d", i), ""); err != nil {
							t.Errorf("post %d: %v", i, err)
							return
						}
						if i == removeAt {
							if _, err := r.chat.RemoveMember(ctx, chatActor("ann"), room, "bob"); err != nil {
								t.Errorf("remove bob: %v", err)
								return
							}
						}
						if readd && i == removeAt+3 {
							if _, err := r.chat.AddMember(ctx, chatActor("ann"), room, "bob"); err != nil {
								t.Errorf("add bob again: %v", err)
								return
							}
						}
					}
				})
				var wg sync.WaitGroup
				check := func(name string, c *wsClient) {
					defer wg.Done()
					got, end := collectUntilEnd(c, "s")
					for _, n := range got {
						if n > removeAt {
							t.Errorf("%s got m%03d, posted after his removal (after m%03d); received %v, ended with %s", name, n, removeAt, got, end)
							return
						}
					}
					if !strings.Contains(end, "FORBIDDEN") {
						t.Errorf("%s: ended with %s after %v, want FORBIDDEN", name, end, got)
					}
				}
				wg.Add(2)
				go check("live bob", liveBob)
				go check("resumed bob", resBob)
				wg.Wait()
				posting.Wait()
			})
		}
	}
}
