package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// laggingLog is a replica's event log that, while lag is set,
// stores what it is given but does not let the replica apply anything:
// the directory's entries, the rooms' live entries and the re-reads of a
// room wait until lag is cleared. It is a replica a few seconds behind the
// log, as one is when NATS redelivers slowly or the replica is starved of
// CPU: every write is stored, none is applied within --apply-timeout.
type laggingLog struct {
	chat.EventLog
	lag atomic.Bool
}

// wait blocks while lag is set, for at most 20 s (every test ends).
func (l *laggingLog) wait(ctx context.Context) {
	for deadline := time.Now().Add(20 * time.Second); l.lag.Load() && ctx.Err() == nil && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *laggingLog) FollowDirectory(ctx context.Context, from uint64, fn func(pubsub.Entry) error) error {
	return l.EventLog.FollowDirectory(ctx, from, func(e pubsub.Entry) error {
		l.wait(ctx)
		return fn(e)
	})
}

func (l *laggingLog) ReadKey(ctx context.Context, key string, from uint64, fn func(pubsub.Entry) error) (uint64, error) {
	l.wait(ctx)
	return l.EventLog.ReadKey(ctx, key, from, fn)
}

func (l *laggingLog) NewLive(opts pubsub.LiveOptions) *pubsub.Live {
	if handle := opts.Handle; handle != nil {
		opts.Handle = func(e pubsub.Entry) {
			l.wait(context.Background())
			handle(e)
		}
	}
	return l.EventLog.NewLive(opts)
}

// TestStoredButNotAppliedIsOutcomeUnknown: a mutation whose event the log
// stored but this replica did not apply within --apply-timeout is answered
// OUTCOME_UNKNOWN ("it may have been stored, read back before repeating"),
// and the event is there once the replica catches up. It was answered
// UNAVAILABLE, which README documents as "storing nothing; retry": a
// client retrying made a second private room, posted twice or took its
// reaction back.
func TestStoredButNotAppliedIsOutcomeUnknown(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Partitions: 1, Logger: quiet})
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	lagging := &laggingLog{EventLog: log}
	svc := runChatWith(t, lagging, chat.Options{Logger: quiet, ApplyTimeout: 400 * time.Millisecond})
	t.Cleanup(func() { lagging.lag.Store(false) }) // runs first: nothing waits at shutdown
	do := executorWithVars(t, svc)

	mustData := func(resp gqlResponse, what string) map[string]json.RawMessage {
		t.Helper()
		if len(resp.Errors) > 0 {
			t.Fatalf("%s: %+v", what, resp.Errors)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(resp.Data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	idOf := func(raw json.RawMessage) string {
		var v struct{ ID string }
		_ = json.Unmarshal(raw, &v)
		return v.ID
	}
	room := idOf(mustData(do("alice", `mutation { createRoom(name: "lagging") { id } }`, nil), "createRoom")["createRoom"])
	msg := idOf(mustData(do("alice", `mutation($r: ID!) { postMessage(roomId: $r, text: "first") { id } }`,
		map[string]any{"r": room}), "postMessage")["postMessage"])
	// The room is held and settled (a re-read is scheduled a second after
	// a load) before the replica starts to lag.
	time.Sleep(1500 * time.Millisecond)

	cases := []struct {
		name     string
		mutation string
		vars     map[string]any
		// after tells, once the replica caught up, whether the event is
		// there once ("" if so)
		after func(t *testing.T) string
	}{{
		name:     "createRoom private",
		mutation: `mutation { createRoom(name: "plans", private: true) { id } }`,
		after: func(t *testing.T) string {
			resp := do("alice", `{ rooms(first: 100) { nodes { name } } }`, nil)
			n := strings.Count(string(resp.Data), `"plans"`)
			if n != 1 {
				return fmt.Sprintf("alice has %d private rooms named plans", n)
			}
			return ""
		},
	}, {
		name:     "postMessage",
		mutation: `mutation($r: ID!) { postMessage(roomId: $r, text: "hello once") { id } }`,
		vars:     map[string]any{"r": room},
		after: func(t *testing.T) string {
			resp := do("alice", `query($r: ID!) { room(id: $r) { messages(last: 50) { nodes { text } } } }`, map[string]any{"r": room})
			n := strings.Count(string(resp.Data), `"hello once"`)
			if n != 1 {
				return fmt.Sprintf("the room holds %d posts of \"hello once\"", n)
			}
			return ""
		},
	}, {
		name:     "react",
		mutation: `mutation($m: ID!) { react(messageId: $m, emoji: "👍") { id } }`,
		vars:     map[string]any{"m": msg},
		after: func(t *testing.T) string {
			resp := do("alice", `query($m: ID!) { message(id: $m) { reactions { emoji count } } }`, map[string]any{"m": msg})
			if !strings.Contains(string(resp.Data), "👍") {
				return "alice's reaction is not there: " + string(resp.Data)
			}
			return ""
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lagging.lag.Store(true)
			resp := do("alice", tc.mutation, tc.vars)
			lagging.lag.Store(false)
			if code := resp.code(); code != "OUTCOME_UNKNOWN" {
				t.Errorf("a stored event not applied within the apply timeout: code %q (%+v), want OUTCOME_UNKNOWN", code, resp.Errors)
			}
			// The replica catches up: at once, or seconds later on a
			// loaded machine.
			problem := tc.after(t)
			for deadline := time.Now().Add(15 * time.Second); problem != "" && time.Now().Before(deadline); problem = tc.after(t) {
				time.Sleep(100 * time.Millisecond)
			}
			if problem != "" {
				t.Errorf("after the replica caught up: %s", problem)
			}
		})
	}
}
