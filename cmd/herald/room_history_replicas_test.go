package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestRaisedHistoryAdoptedByRunningReplica: replica A runs with
// --room-history 3; B joins with 6, which raises the log's limit for
// everyone, and accepts membership changes and edits A's limit would
// refuse. A adopts the raised limit when it meets them (its rooms and its
// member index alike): bob, removed through B, is no member on A either,
// A agrees with B on the message edited beyond A's old limit, and users
// on A may then do what B allows.
func TestRaisedHistoryAdoptedByRunningReplica(t *testing.T) {
	cfgA := testConfig(t, t.TempDir())
	cfgA.NATSListen = freeAddr(t)
	cfgA.RoomHistory = 3
	a := startTestApp(t, cfgA)

	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURLs = []string{a.log.ClientURL()}
	cfgB.RoomHistory = 6
	b := startTestApp(t, cfgB)

	var created struct{ CreateRoom roomData }
	gql(t, b.Addr(), "alice", `mutation { createRoom(name: "secret", private: true) { id } }`, nil, &created)
	room := created.CreateRoom.ID
	// A holds the room (and its message) before B goes beyond A's limit:
	// A folds B's events live, not only in a load after the raise.
	msg := postMessage(t, a.Addr(), "alice", room, "v1")
	for i, m := range []string{"addMember", "removeMember", "addMember", "removeMember"} {
		if r := gql(t, b.Addr(), "alice", `mutation($r: ID!, $u: ID!) { `+m+`(roomId: $r, userId: $u) { id } }`,
			map[string]any{"r": room, "u": "bob"}, nil); len(r.Errors) > 0 {
			t.Fatalf("change %d (%s bob) through B: %+v", i+1, m, r.Errors)
		}
	}
	edit := func(addr string, version int) gqlResponse {
		return gql(t, addr, "alice", `mutation($id: ID!, $v: Int!, $t: String!) { editMessage(id: $id, version: $v, text: $t) { version } }`,
			map[string]any{"id": msg.ID, "v": version, "t": fmt.Sprintf("v%d", version+1)}, nil)
	}
	for v := 1; v <= 3; v++ { // 3 changes: A's old limit refuses the third
		if r := edit(b.Addr(), v); len(r.Errors) > 0 {
			t.Fatalf("edit %d through B: %+v", v, r.Errors)
		}
	}
	marker := postMessage(t, b.Addr(), "alice", room, "after bob left")

	// A has applied everything up to the marker once alice sees it there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct{ Message *messageData }
		gql(t, a.Addr(), "alice", `query($id: ID!) { message(id: $id) { text } }`, map[string]any{"id": marker.ID}, &out)
		if out.Message != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A never applied alice's marker post")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := a.log.MaxMsgsPerSubject(); got != 6 {
		t.Errorf("A's log knows the per-subject limit as %d after B raised it to 6", got)
	}

	for _, r := range []struct {
		name string
		app  *app
	}{{"A", a}, {"B", b}} {
		bob := gql(t, r.app.Addr(), "bob", `query($id: ID!) { message(id: $id) { text } }`, map[string]any{"id": marker.ID}, nil)
		var read struct{ Message *messageData }
		_ = decodeInto(bob, &read)
		if read.Message != nil {
			t.Errorf("bob, removed from the private room through B, reads its messages on %s: %s", r.name, bob.Data)
		}
		var rooms struct {
			Rooms struct{ Nodes []roomData }
		}
		gql(t, r.app.Addr(), "bob", `{ rooms { nodes { id } } }`, nil, &rooms)
		for _, n := range rooms.Rooms.Nodes {
			if n.ID == room {
				t.Errorf("%s lists the private room among bob's rooms after his removal through B", r.name)
			}
		}
		var edited struct{ Message *messageData }
		gql(t, r.app.Addr(), "alice", `query($id: ID!) { message(id: $id) { text version } }`, map[string]any{"id": msg.ID}, &edited)
		if edited.Message == nil || edited.Message.Text != "v4" || edited.Message.Version != 4 {
			t.Errorf("the message edited 3 times through B, on %s: %+v; want \"v4\" at version 4", r.name, edited.Message)
		}
	}

	// A proposal A's old limit refuses (a fourth change, over 3 - 1) is
	// judged by the raised one, as B judges it.
	if r := edit(a.Addr(), 4); len(r.Errors) > 0 {
		t.Errorf("a fourth edit through A, which B's --room-history 6 allows: %+v", r.Errors)
	}
}

// TestLoweredHistoryRefusedWhileLogInUse: a replica started with a lower
// --room-history than the log's is refused, naming the limit in force,
// once the log holds any entry (a room's directory entry is one) or
// another replica is alive: NATS would discard changes the running
// replica keeps within its limit. An empty log nobody uses may be lowered.
func TestLoweredHistoryRefusedWhileLogInUse(t *testing.T) {
	for _, tt := range []struct {
		name        string
		prepare     func(t *testing.T, a *app) // with A running
		stopA       bool
		wantRefused string // "" = B starts
	}{
		{name: "a room, no message", prepare: func(t *testing.T, a *app) { createRoom(t, a.Addr(), "alice", "general") },
			wantRefused: "the event log holds 1 entries"},
		{name: "empty log, replica alive", wantRefused: "1 replica(s) alive"},
		{name: "empty log, nobody alive", stopA: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfgA := testConfig(t, t.TempDir())
			cfgA.NATSListen = freeAddr(t)
			cfgA.RoomHistory = 6
			a := startTestApp(t, cfgA)
			if tt.prepare != nil {
				tt.prepare(t, a)
			}
			if tt.stopA {
				// What is left of A is the embedded NATS server it serves.
				stopPresence(t, a)
			}
			cfgB := testConfig(t, t.TempDir())
			cfgB.NATSURLs = []string{a.log.ClientURL()}
			cfgB.RoomHistory = 3
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			b, err := startApp(ctx, cfgB, quietLogger(t))
			if err == nil {
				t.Cleanup(func() { stopTestApp(t, b) })
			}
			switch {
			case tt.wantRefused == "" && err != nil:
				t.Fatalf("B with --room-history 3 on an empty log nobody uses: %v", err)
			case tt.wantRefused == "":
				if got := b.log.MaxMsgsPerSubject(); got != 3 {
					t.Errorf("B's limit = %d, want 3", got)
				}
			case err == nil:
				t.Fatalf("B with --room-history 3 started under A's 6 (%s)", tt.name)
			case !errors.Is(err, pubsub.ErrHistoryLowered) || !strings.Contains(err.Error(), tt.wantRefused) ||
				!strings.Contains(err.Error(), "--room-history) at 6 or more"):
				t.Errorf("B refused with %v; want ErrHistoryLowered saying %q and naming 6", err, tt.wantRefused)
			}
		})
	}
}

// stopPresence ends a's presence, as its stop does, so that no replica is
// alive on the log it serves.
func stopPresence(t *testing.T, a *app) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.presence.Close(ctx); err != nil {
		t.Fatalf("close A's presence: %v", err)
	}
}

// TestStreamReplicasNeverLowered: replicas run on a 3-node NATS cluster
// with --stream-replicas 3. One more started without the flag (1) is
// refused, naming the count in force and the flag, and the log's streams
// and the presence buckets keep 3 replicas; presence alone, set up with
// fewer, is refused too. One started with 3 joins.
func TestStreamReplicasNeverLowered(t *testing.T) {
	urls := natsCluster(t, 3)

	cfgA := testConfig(t, t.TempDir())
	cfgA.NATSURLs = urls
	cfgA.StreamReplicas = 3
	a := startTestApp(t, cfgA)
	room := createRoom(t, a.Addr(), "alice", "general")
	postMessage(t, a.Addr(), "alice", room, "hello")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURLs = urls // --stream-replicas left at its default
	b, err := startApp(ctx, cfgB, quietLogger(t))
	if err == nil {
		stopTestApp(t, b)
		t.Fatal("a replica started with --stream-replicas 1 on a log kept with 3")
	}
	if !errors.Is(err, pubsub.ErrReplicasLowered) || !strings.Contains(err.Error(), "keeps 3 replicas") ||
		!strings.Contains(err.Error(), "--stream-replicas") {
		t.Errorf("refused with %v; want ErrReplicasLowered naming 3 and --stream-replicas", err)
	}
	_, err = a.log.Presence(ctx, pubsub.PresenceOptions{Replica: "probe", Replicas: 1})
	if !errors.Is(err, pubsub.ErrReplicasLowered) {
		t.Errorf("presence set up with 1 replica on buckets kept with 3: %v; want ErrReplicasLowered", err)
	}
	for _, name := range []string{"HERALD_ROOMS", "HERALD_P0", "KV_HERALD_PRESENCE", "KV_HERALD_PRESENCE_REPLICAS"} {
		if got := streamReplicas(t, ctx, urls, name); got != 3 {
			t.Errorf("stream %s has %d replica(s) after the refused start, want 3", name, got)
		}
	}

	cfgC := testConfig(t, t.TempDir())
	cfgC.NATSURLs = urls
	cfgC.StreamReplicas = 3
	startTestApp(t, cfgC)
}
