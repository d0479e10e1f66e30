package graph

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Paris whatever the host has

	"github.com/heraldhq/herald/chat"
)

// TestTimesAreUTCOnEveryReplica: the same message read on two
// replicas must have the same createdAt and editedAt, and a member list
// one offset. README: replicas "all see the same data"; a client (Apollo's
// cache, a page rendered on one replica and patched by events from
// another) compares them as strings.
//
// A replica that applied an event live takes its time from the
// republished Nats-Time-Stamp header, parsed as UTC (pubsub/live.go); a
// replica that read it from the log (a room loaded on demand, a re-read)
// took time.Unix(0, stored) (pubsub/keyed.go), in the process's local
// zone: under any TZ but UTC the two rendered differently,
// "…T12:00:00.5Z" on one replica, "…T13:00:00.5+01:00" on the other.
//
// The check runs in a child process of this test binary with
// TZ=Europe/Paris, so that it does not depend on the host's zone and does
// not change time.Local under other tests.
func TestTimesAreUTCOnEveryReplica(t *testing.T) {
	if os.Getenv("HERALD_TZ_CHILD") == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestTimesAreUTCOnEveryReplica$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "HERALD_TZ_CHILD=1", "TZ=Europe/Paris")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("under TZ=Europe/Paris: %v\n%s", err, out)
		}
		return
	}
	if _, off := time.Now().Zone(); off == 0 {
		t.Fatal("child process is not in a zone with an offset")
	}
	a, b, _ := replicaAndLaggard(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	room, err := a.CreatePrivateRoom(ctx, alice, "times")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	m, err := a.PostMessage(ctx, alice, room.ID, "hello", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.EditMessage(ctx, alice, m.ID, 1, "hello again"); err != nil {
		t.Fatal(err)
	}
	// a applied every event live; b has not held the room and loads it
	// from the log now.
	q := `{ room(id: "` + room.ID + `") { lastMessageAt
	  members { edges { joinedAt node { id } } }
	  messages { nodes { id createdAt editedAt } } } }`
	read := func(svc *chat.Service) string {
		resp := executor(t, svc)("alice", q)
		if len(resp.Errors) > 0 {
			t.Fatalf("%+v", resp.Errors)
		}
		return canon(resp.Data)
	}
	onA, onB := read(a), read(b)
	if onA != onB {
		t.Errorf("the same room read on two replicas:\n  live-applied  %s\n  loaded        %s", onA, onB)
	}
	// Within one replica too: the creator's joinedAt comes from the
	// directory (read from the log), bob's from his member.added.
	var v struct {
		Room struct {
			Members struct {
				Edges []struct{ JoinedAt string }
			}
		}
	}
	if err := json.Unmarshal([]byte(onA), &v); err != nil {
		t.Fatal(err)
	}
	for _, e := range v.Room.Members.Edges {
		if !strings.HasSuffix(e.JoinedAt, "Z") {
			t.Errorf("a member's joinedAt %q is not in UTC", e.JoinedAt)
		}
	}
	if strings.Contains(onA+onB, "+01:00") || strings.Contains(onA+onB, "+02:00") {
		t.Errorf("times in the host's zone, not UTC:\n  %s\n  %s", onA, onB)
	}
}
