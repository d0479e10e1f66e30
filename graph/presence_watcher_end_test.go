package graph

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestRemovedMemberPresenceEndsAfterTheRoomWatcherEnded: a replica
// that missed a private room's events the log has discarded since ends the
// room's watchers (CURSOR_EXPIRED): messagePosted and roomEvents end with
// that error. A roomPresence subscriber there must not be left as it is
// (README: "a removed member's roomPresence ends with FORBIDDEN"): either
// its subscription ends with the watcher, or a later removal still ends it.
func TestRemovedMemberPresenceEndsAfterTheRoomWatcherEnded(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(fmt.Sprintf("missed events %v", lose), func(t *testing.T) { removedMemberPresence(t, lose) })
	}
}

func removedMemberPresence(t *testing.T, lose bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	a, b, lossy := lossyReplicaPair(t, ctx, 3)
	hs := presenceServer(t, b, &controlledPresence{users: []string{"bob"}}, 0)
	alice := chat.Actor{ID: "alice"}

	room, err := a.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ok, _ := b.Admits(ctx, "bob", room.ID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never admitted bob")
		}
	}
	body, _ := json.Marshal(map[string]any{"query": presenceQuery, "variables": map[string]any{"r": room.ID}})
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
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			if l := strings.TrimRight(line, "\n"); l != "" && !strings.HasPrefix(l, ":") && !strings.HasPrefix(l, "event: next") {
				lines <- l
			}
		}
	}()
	next := func(within time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			if !ok {
				return "<stream closed>", true
			}
			return l, true
		case <-time.After(within):
			return "", false
		}
	}
	if l, ok := next(5 * time.Second); !ok || !strings.Contains(l, "SNAPSHOT") {
		t.Fatalf("first event %q, want a SNAPSHOT", l)
	}

	m0, err := a.PostMessage(ctx, alice, room.ID, "m0", "")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // as TestSubscriptionEndsWhenTheLogDiscardedWhatItMissed
	if lose {
		lossy.through.Store(math.MaxUint64)
		lossy.after.Store(m0.Seq)
	}
	var last chat.Message
	for i := 1; i <= 5; i++ {
		if last, err = a.PostMessage(ctx, alice, room.ID, fmt.Sprintf("m%d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	if lose {
		lossy.through.Store(last.Seq)
	}
	if _, err := a.PostMessage(ctx, alice, room.ID, "m6", ""); err != nil {
		t.Fatal(err)
	}
	// Whatever the room watcher's end did to the subscription, it is
	// either over now or must end with bob's removal.
	ended := ""
	if l, ok := next(3 * time.Second); ok {
		ended = l
	}
	if _, err := a.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ended == ""; {
		ok, _ := b.Admits(ctx, "bob", room.ID)
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b never applied bob's removal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ended != "" {
		if !strings.Contains(ended, "CURSOR_EXPIRED") {
			t.Fatalf("the subscription ended with the room watcher: %s, want CURSOR_EXPIRED", ended)
		}
		return
	}
	l, ok := next(5 * time.Second)
	if !ok {
		t.Fatalf("bob, removed from the private room (b applied it), still has roomPresence open 5s later")
	}
	if !strings.Contains(l, "FORBIDDEN") && !strings.Contains(l, "complete") && l != "<stream closed>" {
		t.Fatalf("after bob's removal: %s, want FORBIDDEN", l)
	}
}
