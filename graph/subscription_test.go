package graph

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// startChat runs a chat service over an embedded NATS until the test ends.
func startChat(t *testing.T) *chat.Service {
	t.Helper()
	_, svc := startChatLog(t)
	return svc
}

// startChatLog is startChat, which also returns the service's event log.
func startChatLog(t *testing.T) (*pubsub.Log, *chat.Service) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Partitions: 1, Logger: quiet})
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	return log, runChat(t, log)
}

// runChat runs a chat service over log until the test ends, and returns
// it once it is ready.
func runChat(t *testing.T, log chat.EventLog) *chat.Service {
	t.Helper()
	return runChatWith(t, log, chat.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// receive returns the texts of the events read from ch until it closes or
// quiet passes without one.
func receive[T any](ch <-chan graphql.Event[T], text func(T) string, quiet time.Duration) (texts []string, closed bool) {
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return texts, true
			}
			texts = append(texts, text(ev.Value))
		case <-time.After(quiet):
			return texts, false
		}
	}
}

// TestUnsharedSubscriptionEndsForRemovedMember: without an engine sharing
// the execution (no auth.Guard on the context), the resolver itself keeps a
// private room's events from a subscriber removed from it, and ends the
// subscription, as the engine would.
func TestUnsharedSubscriptionEndsForRemovedMember(t *testing.T) {
	svc := startChat(t)
	r := &Resolver{chat: svc, epoch: 1}
	alice := chat.Actor{ID: "alice"}
	for _, tc := range []struct {
		name      string
		subscribe func(ctx context.Context, roomID string) (func() ([]string, bool), error)
	}{
		{name: "messagePosted", subscribe: func(ctx context.Context, roomID string) (func() ([]string, bool), error) {
			ch, err := r.Subscription().MessagePosted(ctx, roomID, nil)
			return func() ([]string, bool) {
				return receive(ch, func(m *chat.Message) string { return m.Text }, 300*time.Millisecond)
			}, err
		}},
		{name: "roomEvents", subscribe: func(ctx context.Context, roomID string) (func() ([]string, bool), error) {
			ch, err := r.Subscription().RoomEvents(ctx, roomID, nil)
			return func() ([]string, bool) {
				return receive(ch, func(c *chat.Change) string { return c.Message.Text }, 300*time.Millisecond)
			}, err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			room, err := svc.CreatePrivateRoom(ctx, alice, "secret "+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddMember(ctx, alice, room.ID, "bob"); err != nil {
				t.Fatal(err)
			}
			subCtx, cancel := context.WithCancel(auth.NewContext(ctx, auth.Identity{UserID: "bob"}))
			defer cancel()
			next, err := tc.subscribe(subCtx, room.ID)
			if err != nil {
				t.Fatalf("bob subscribes as a member: %v", err)
			}
			if _, err := svc.PostMessage(ctx, alice, room.ID, "before", ""); err != nil {
				t.Fatal(err)
			}
			if got, closed := next(); len(got) != 1 || got[0] != "before" || closed {
				t.Fatalf("while a member, bob got %q (closed %v), want [before]", got, closed)
			}
			if _, err := svc.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PostMessage(ctx, alice, room.ID, "after", ""); err != nil {
				t.Fatal(err)
			}
			got, closed := next()
			if len(got) != 0 || !closed {
				t.Errorf("after his removal, bob got %q (subscription ended: %v), want nothing and the end", got, closed)
			}
		})
	}
}
