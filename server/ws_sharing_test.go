package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/chat"
)

// fieldCounter counts resolutions per "Type.field".
type fieldCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (fc *fieldCounter) middleware(ctx context.Context, next graphql.Resolver) (any, error) {
	if f := graphql.GetFieldContext(ctx); f != nil {
		fc.mu.Lock()
		fc.counts[f.Object+"."+f.Field.Name]++
		fc.mu.Unlock()
	}
	return next(ctx)
}

func (fc *fieldCounter) get(name string) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.counts[name]
}

// TestIdenticalSubscriptionsShareOneExecution subscribes 1,000 sockets to
// the same subscription: the resolver runs once, each nested resolver once
// per event, and all 1,000 receive byte-identical payloads.
func TestIdenticalSubscriptionsShareOneExecution(t *testing.T) {
	const subscribers, events = 1000, 3
	fc := &fieldCounter{counts: map[string]int{}}
	r := newReplica(t, func(o *Options) { o.AroundFields = fc.middleware })
	room := r.room("general")
	query := `subscription($r: ID!) { messagePosted(roomId: $r) { id text author { name } room { name messageCount } } }`

	clients := make([]*wsClient, subscribers)
	for i := range clients {
		user := fmt.Sprintf("user%d", i%50) // many identities: none of the selected fields depends on who asks
		if i%2 == 0 {
			clients[i] = r.dialTransport(user)
			clients[i].subscribe("subscribe", "s", query, map[string]any{"r": room})
		} else {
			clients[i] = r.dialLegacy(user)
			clients[i].subscribe("start", "s", query, map[string]any{"r": room})
		}
	}
	waitFor(t, "all subscriptions to join", func() bool { return r.members() == subscribers })
	if n := r.server.ws.execs.count(); n != 1 {
		t.Fatalf("%d executions for %d identical subscriptions, want 1", n, subscribers)
	}
	if st := r.chat.Stats(); st.LiveSubscriptions != 1 || st.RoomsHeld != 1 {
		t.Fatalf("replica holds %+v with %d subscribers of one room, want one room and one live subscription", st, subscribers)
	}

	for i := range events {
		r.post(room, "poster", fmt.Sprintf("event %d", i))
	}
	payloads := make([][]string, subscribers)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for range events {
				f, err := c.read(10 * time.Second)
				for err == nil && f.Type == "ka" {
					f, err = c.read(10 * time.Second)
				}
				if err != nil {
					return
				}
				payloads[i] = append(payloads[i], string(f.Payload))
			}
		})
	}
	wg.Wait()
	for i := range payloads {
		if len(payloads[i]) != events {
			t.Fatalf("subscriber %d received %d events, want %d", i, len(payloads[i]), events)
		}
		for e := range events {
			if payloads[i][e] != payloads[0][e] {
				t.Fatalf("subscriber %d event %d differs:\n%s\n%s", i, e, payloads[i][e], payloads[0][e])
			}
		}
	}
	for field, want := range map[string]int{
		"Subscription.messagePosted": 1,
		"Message.room":               events,
		"Message.author":             events,
		"Room.messageCount":          events,
	} {
		if got := fc.get(field); got != want {
			t.Errorf("%s resolved %d times, want %d", field, got, want)
		}
	}
}

// TestDifferentSubscriptionsDoNotShare checks what makes a key: variables,
// and identity only when a viewer-dependent field is selected.
func TestDifferentSubscriptionsDoNotShare(t *testing.T) {
	r := newReplica(t, nil)
	roomA, roomB := r.room("a"), r.room("b")
	plain := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	viewer := `subscription($r: ID!) { messagePosted(roomId: $r) { text reactions { emoji viewerHasReacted } } }`
	tests := []struct {
		name  string
		subs  []struct{ user, query, room string }
		execs int
	}{
		{"different variables", []struct{ user, query, room string }{{"alice", plain, roomA}, {"alice", plain, roomB}}, 2},
		{"different identities, viewer-independent", []struct{ user, query, room string }{{"alice", plain, roomA}, {"bob", plain, roomA}}, 1},
		{"different identities, viewer-dependent", []struct{ user, query, room string }{{"alice", viewer, roomA}, {"bob", viewer, roomA}}, 2},
		{"same identity, viewer-dependent", []struct{ user, query, room string }{{"alice", viewer, roomA}, {"alice", viewer, roomA}}, 1},
		{"anonymous and signed in, viewer-dependent", []struct{ user, query, room string }{{"", viewer, roomA}, {"alice", viewer, roomA}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			waitFor(t, "earlier subscriptions to end", func() bool { return r.members() == 0 })
			for _, s := range tt.subs {
				c := r.dialTransport(s.user)
				c.subscribe("subscribe", "s", s.query, map[string]any{"r": s.room})
			}
			waitFor(t, "the subscriptions to join", func() bool { return r.members() == len(tt.subs) })
			if n := r.server.ws.execs.count(); n != tt.execs {
				t.Fatalf("%d executions, want %d", n, tt.execs)
			}
		})
	}
}

// TestViewerDependentSubscriptionsSeeTheirOwnIdentity makes sure that
// per-identity executions really resolve per identity.
func TestViewerDependentSubscriptionsSeeTheirOwnIdentity(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	msg := r.post(room, "poster", "react to me")
	q := `subscription($r: ID!) { roomEvents(roomId: $r) { kind message { reactions { emoji count viewerHasReacted } } } }`
	alice, bob := r.dialTransport("alice"), r.dialTransport("bob")
	alice.subscribe("subscribe", "s", q, map[string]any{"r": room})
	bob.subscribe("subscribe", "s", q, map[string]any{"r": room})
	waitFor(t, "both to join", func() bool { return r.members() == 2 })
	if _, err := r.chat.React(context.Background(), chat.Actor{ID: "alice"}, msg.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	for user, c := range map[string]*wsClient{"alice": alice, "bob": bob} {
		var got struct {
			RoomEvents struct {
				Message struct {
					Reactions []struct {
						Count            int
						ViewerHasReacted bool
					}
				}
			}
		}
		c.next().data(t, &got)
		rs := got.RoomEvents.Message.Reactions
		if len(rs) != 1 || rs[0].Count != 1 || rs[0].ViewerHasReacted != (user == "alice") {
			t.Fatalf("%s sees %+v", user, rs)
		}
	}
}
