package graph

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// droppingLiveLog is a replica's event log that loses the live entries in
// (after, through]: a replica whose live subscription fell behind or
// reconnected, as any may.
type droppingLiveLog struct {
	chat.EventLog
	after, through atomic.Uint64
}

func (l *droppingLiveLog) NewLive(opts pubsub.LiveOptions) *pubsub.Live {
	if handle := opts.Handle; handle != nil {
		opts.Handle = func(e pubsub.Entry) {
			if after := l.after.Load(); after != 0 && e.Seq > after && e.Seq <= l.through.Load() {
				return
			}
			handle(e)
		}
	}
	return l.EventLog.NewLive(opts)
}

// TestSubscriptionEndsWhenTheLogDiscardedWhatItMissed: a replica that
// missed a room's live posts and catches up after the room went on by more
// than its history cannot give its subscribers every change: their
// subscription gets CURSOR_EXPIRED at its root field and completes (it
// went on with what the log still held, silently missing the rest), which
// sends a client refetching.
func TestSubscriptionEndsWhenTheLogDiscardedWhatItMissed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b, lossy := lossyReplicaPair(t, ctx, 3)
	hs := presenceServer(t, b, nil, 0)
	alice := chat.Actor{ID: "alice"}

	room, err := a.CreateRoom(ctx, alice, "busy")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"query": `subscription($r: ID!) { events: roomEvents(roomId: $r) { message { text } } }`,
		"variables": map[string]any{"r": room.ID}})
	req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(auth.DevHeader, "bob")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe: %s", resp.Status)
	}
	events := make(chan string, 64) // "next <data>" or "complete"
	go func() {
		defer close(events)
		rd := bufio.NewReader(resp.Body)
		event := ""
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			if e, ok := strings.CutPrefix(line, "event: "); ok {
				event = e
				if e == "complete" {
					events <- "complete"
				}
			} else if d, ok := strings.CutPrefix(line, "data: "); ok && event == "next" {
				events <- "next " + d
			}
		}
	}()
	next := func(what string) string {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before %s", what)
			}
			return e
		case <-ctx.Done():
			t.Fatalf("no %s", what)
		}
		return ""
	}

	m0, err := a.PostMessage(ctx, alice, room.ID, "m0", "")
	if err != nil {
		t.Fatal(err)
	}
	if e := next("m0"); !strings.Contains(e, `"m0"`) {
		t.Fatalf("first event %s, want m0", e)
	}
	// b's load of the room schedules a re-read a second later: let it run
	// before the loss, so that the loss is found by the live entries.
	time.Sleep(1500 * time.Millisecond)

	lossy.through.Store(math.MaxUint64)
	lossy.after.Store(m0.Seq)
	var last chat.Message
	for i := 1; i <= 5; i++ { // the log keeps m3..m5 of them only
		if last, err = a.PostMessage(ctx, alice, room.ID, fmt.Sprintf("m%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	lossy.through.Store(last.Seq)
	if _, err := a.PostMessage(ctx, alice, room.ID, "m6", ""); err != nil {
		t.Fatal(err)
	}

	e := next("the end of the subscription")
	var got struct {
		Data   json.RawMessage
		Errors []struct {
			Path       []any
			Extensions struct{ Code string }
		}
	}
	if d, ok := strings.CutPrefix(e, "next "); !ok || json.Unmarshal([]byte(d), &got) != nil {
		t.Fatalf("got %s, want an event with CURSOR_EXPIRED", e)
	}
	if len(got.Errors) != 1 || got.Errors[0].Extensions.Code != string(chat.CodeCursorExpired) ||
		fmt.Sprint(got.Errors[0].Path) != "[events]" || len(got.Data) != 0 {
		t.Fatalf("got %s, want one CURSOR_EXPIRED error at [events] and no data (the events after m0 were m1..m6, m1 and m2 no longer in the log)", e)
	}
	if e := next("complete"); e != "complete" {
		t.Fatalf("after the error: %s, want complete", e)
	}
}

// lossyReplicaPair runs two chat replicas of one log (a partition, a
// room history of history messages): a, and b, whose live events lossy can
// drop.
func lossyReplicaPair(t *testing.T, ctx context.Context, history int) (a, b *chat.Service, lossy *droppingLiveLog) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Partitions: 1, ListenAddr: "127.0.0.1:0",
		MaxMsgsPerSubject: int64(history), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	second, err := pubsub.Open(ctx, pubsub.Options{URLs: []string{first.ClientURL()}, Partitions: 1, MaxMsgsPerSubject: int64(history), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	lossy = &droppingLiveLog{EventLog: second}
	a = runChatWith(t, first, chat.Options{History: history, Logger: quiet})
	b = runChatWith(t, lossy, chat.Options{History: history, Logger: quiet})
	return a, b, lossy
}

// runChatWith is runChat with options.
func runChatWith(t *testing.T, log chat.EventLog, opts chat.Options) *chat.Service {
	t.Helper()
	svc := chat.NewService(log, opts)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(runCtx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := svc.Ready(); ok {
			return svc
		}
		if time.Now().After(deadline) {
			t.Fatal("the chat service did not become ready")
		}
	}
}

// TestMessagesBackAfterDiscardedCursor: a client that read up to m0
// asks for what came since as the latest messages after its cursor
// (messages(last:, after:), or both cursors and no count). m1 and m2 were
// discarded by the log meanwhile: the answer must say so (CURSOR_EXPIRED,
// as messages(first:, after:) and roomEvents(after:) do), not show m3..m5
// with hasPreviousPage false.
func TestMessagesBackAfterDiscardedCursor(t *testing.T) {
	const history = 3
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lg, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Partitions: 1, MaxMsgsPerSubject: int64(history), Logger: quiet})
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = lg.Close() })
	svc := runChatWith(t, lg, chat.Options{History: history, Logger: quiet})
	do := executor(t, svc)
	r := &Resolver{chat: svc, epoch: 1} // executor's epoch
	alice := chat.Actor{ID: "alice"}
	room, err := svc.CreateRoom(ctx, alice, "gap")
	if err != nil {
		t.Fatal(err)
	}
	read, err := svc.PostMessage(ctx, alice, room.ID, "m0", "")
	if err != nil {
		t.Fatal(err)
	}
	var last chat.Message
	for i := 1; i <= 5; i++ {
		if last, err = svc.PostMessage(ctx, alice, room.ID, fmt.Sprint("m", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	after := r.encodeCursor(roomScope(room.ID), read.Seq)
	before := r.encodeCursor(roomScope(room.ID), last.Seq+1)
	for _, args := range []string{
		fmt.Sprintf("first: 10, after: %q", after), // refused today
		fmt.Sprintf("last: 10, after: %q", after),
		fmt.Sprintf("after: %q, before: %q", after, before),
	} {
		resp := do("alice", fmt.Sprintf(`{ room(id: %q) { messages(%s) { nodes { text } pageInfo { hasPreviousPage } } } }`, room.ID, args))
		if resp.code() == string(chat.CodeCursorExpired) {
			continue
		}
		var v struct {
			Room struct {
				Messages struct {
					Nodes    []struct{ Text string }
					PageInfo struct{ HasPreviousPage bool }
				}
			}
		}
		if err := json.Unmarshal(resp.Data, &v); err != nil {
			t.Fatalf("%s: %s %+v", args, resp.Data, resp.Errors)
		}
		if m := v.Room.Messages; len(m.Nodes) > 0 && m.Nodes[0].Text != "m1" && !m.PageInfo.HasPreviousPage {
			t.Errorf("messages(%s) = %+v, hasPreviousPage false, no error: m1 and m2 followed the cursor and are gone without a word", args, m.Nodes)
		}
	}
}
