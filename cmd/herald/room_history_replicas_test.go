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

// TestRaisedHistoryRefusedWhileAReplicaRuns: replica A runs with
// --room-history 3. B started with 6 while A runs is refused, naming the
// value in force, A and what to do, and changes nothing: the log keeps 3,
// A still judges by it (a third edit is refused), and a replica joining
// with 3 agrees with A on the private room's membership and messages.
// Once no replica is alive, B starts with 6, raising the log's limit, and
// finds the rooms as A left them.
func TestRaisedHistoryRefusedWhileAReplicaRuns(t *testing.T) {
	cfgA := testConfig(t, t.TempDir())
	cfgA.NATSListen = freeAddr(t)
	cfgA.RoomHistory = 3
	a := startTestApp(t, cfgA)
	urls := []string{a.log.ClientURL()}

	var created struct{ CreateRoom roomData }
	gql(t, a.Addr(), "alice", `mutation { createRoom(name: "secret", private: true) { id } }`, nil, &created)
	room := created.CreateRoom.ID
	for _, m := range []string{"addMember", "removeMember"} {
		if r := gql(t, a.Addr(), "alice", `mutation($r: ID!, $u: ID!) { `+m+`(roomId: $r, userId: $u) { id } }`,
			map[string]any{"r": room, "u": "bob"}, nil); len(r.Errors) > 0 {
			t.Fatalf("%s bob through A: %+v", m, r.Errors)
		}
	}
	msg := postMessage(t, a.Addr(), "alice", room, "v1")
	edit := func(addr string, version int) gqlResponse {
		return gql(t, addr, "alice", `mutation($id: ID!, $v: Int!, $t: String!) { editMessage(id: $id, version: $v, text: $t) { version } }`,
			map[string]any{"id": msg.ID, "v": version, "t": fmt.Sprintf("v%d", version+1)}, nil)
	}
	for v := 1; v <= 2; v++ {
		if r := edit(a.Addr(), v); len(r.Errors) > 0 {
			t.Fatalf("edit %d through A: %+v", v, r.Errors)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURLs = urls
	cfgB.RoomHistory = 6
	b, err := startApp(ctx, cfgB, quietLogger(t))
	if err == nil {
		stopTestApp(t, b)
		t.Fatal("B with --room-history 6 started under A running with 3")
	}
	t.Logf("B refused: %v", err)
	if !errors.Is(err, pubsub.ErrHistoryRaised) {
		t.Errorf("B refused with %v; want ErrHistoryRaised", err)
	}
	for _, want := range []string{"keeps max_msgs_per_subject 3", "1 replica(s) alive", "start with MaxMsgsPerSubject (--room-history) 3",
		"stop every replica and start them all with 6", "counts as alive"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("B refused with %q; want it to say %q", err, want)
		}
	}
	if got := streamConfig(t, ctx, urls, "HERALD_P0").MaxMsgsPerSubject; got != 3 {
		t.Errorf("the log keeps max_msgs_per_subject %d after B's refused start, want 3", got)
	}

	// roomAsLeft checks what a replica answers of the room: bob, removed,
	// neither reads it nor has it among his rooms, and the message is
	// alice's last edit.
	roomAsLeft := func(name, addr, text string, version int) {
		t.Helper()
		bob := gql(t, addr, "bob", `query($id: ID!) { message(id: $id) { text } }`, map[string]any{"id": msg.ID}, nil)
		var read struct{ Message *messageData }
		_ = decodeInto(bob, &read)
		if read.Message != nil {
			t.Errorf("bob, removed from the private room, reads its messages on %s: %s", name, bob.Data)
		}
		var rooms struct {
			Rooms struct{ Nodes []roomData }
		}
		gql(t, addr, "bob", `{ rooms { nodes { id } } }`, nil, &rooms)
		for _, n := range rooms.Rooms.Nodes {
			if n.ID == room {
				t.Errorf("%s lists the private room among bob's rooms after his removal", name)
			}
		}
		var got struct{ Message *messageData }
		gql(t, addr, "alice", `query($id: ID!) { message(id: $id) { text version } }`, map[string]any{"id": msg.ID}, &got)
		if got.Message == nil || got.Message.Text != text || got.Message.Version != version {
			t.Errorf("the message on %s: %+v; want %q at version %d", name, got.Message, text, version)
		}
	}
	// A still judges by 3: a message keeps 2 changes but for its deletion.
	if r := edit(a.Addr(), 3); r.code() != "CONFLICT" {
		t.Errorf("a third edit through A under --room-history 3: %+v; want CONFLICT", r.Errors)
	}
	roomAsLeft("A", a.Addr(), "v3", 3)
	cfgC := testConfig(t, t.TempDir())
	cfgC.NATSURLs = urls
	cfgC.RoomHistory = 3
	c := startTestApp(t, cfgC)
	roomAsLeft("C, started with A's 3", c.Addr(), "v3", 3)

	// With no replica alive, raising is allowed. What is left of A is the
	// embedded NATS server it serves.
	stopTestApp(t, c)
	stopPresence(t, a)
	b = startTestApp(t, cfgB)
	if got, limit := b.log.MaxMsgsPerSubject(), streamConfig(t, ctx, urls, "HERALD_P0").MaxMsgsPerSubject; got != 6 || limit != 6 {
		t.Errorf("B started with 6 once no replica was alive: its limit %d, the log's %d; want 6", got, limit)
	}
	roomAsLeft("B, started with 6 once alone", b.Addr(), "v3", 3)
	if r := edit(b.Addr(), 3); len(r.Errors) > 0 {
		t.Errorf("a third edit through B under --room-history 6: %+v", r.Errors)
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
		if got := streamConfig(t, ctx, urls, name).Replicas; got != 3 {
			t.Errorf("stream %s has %d replica(s) after the refused start, want 3", name, got)
		}
	}

	cfgC := testConfig(t, t.TempDir())
	cfgC.NATSURLs = urls
	cfgC.StreamReplicas = 3
	startTestApp(t, cfgC)
}
