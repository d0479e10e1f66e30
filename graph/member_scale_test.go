package graph

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// roomChain appends a room's events to the log as a proposer does
// (each with the room's previous event as Prev, on the subject chat gives
// it), without going through a replica: seeding a room of thousands of
// members or reactions by mutations would take minutes under -race.
type roomChain struct {
	t    *testing.T
	log  *pubsub.Log
	room string
	prev uint64
}

func (c *roomChain) append(e chat.Event) {
	c.t.Helper()
	e.RoomID, e.Prev = c.room, c.prev
	var rest string
	switch e.Type {
	case chat.MemberAdded, chat.MemberRemoved:
		sum := sha256.Sum256([]byte(e.UserID))
		rest = "member." + hex.EncodeToString(sum[:16])
	case chat.MessagePosted:
		rest = "posts"
	default:
		rest = "msg." + e.MessageID
	}
	data, err := e.Encode()
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.log.AppendKeyed(ctx, c.room, rest, data, pubsub.AppendOptions{ExpectLast: c.prev})
	if err != nil {
		c.t.Fatalf("append %s: %v", e.Type, err)
	}
	c.prev = res.Seq
}

// allocatedBy runs fn and returns the bytes the process allocated
// meanwhile and how long it took.
func allocatedBy(fn func()) (uint64, time.Duration) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, took
}

// seedPrivateRoom creates a private room of owner with n more
// members, written to the log directly, on no replica's held rooms.
func seedPrivateRoom(t *testing.T, log *pubsub.Log, svc *chat.Service, owner chat.Actor, n int) string {
	t.Helper()
	room, err := svc.CreatePrivateRoom(context.Background(), owner, fmt.Sprintf("big-%d", n))
	if err != nil {
		t.Fatal(err)
	}
	c := &roomChain{t: t, log: log, room: room.ID}
	for i := range n {
		c.append(chat.Event{Type: chat.MemberAdded, Actor: owner, UserID: fmt.Sprintf("member-%06d", i)})
	}
	return room.ID
}

// TestPrivateRoomLoadIsLinearInMembers: loading a private room costs
// O(its events). roomState.changeMembers rebuilt the access map (a copy of
// every member) after every member event: folding a room of m members
// from the log built m maps of up to m entries, O(m²) time and memory. The
// first query of a room of 4,000 members allocated 357 MiB, and one of
// 20,000 members outlasted the apply timeout that bounds each read: it
// could not be loaded on a fresh replica at all.
func TestPrivateRoomLoadIsLinearInMembers(t *testing.T) {
	log, svc := startChatLog(t)
	owner := chat.Actor{ID: "owner"}
	const small, large = 500, 2000
	rooms := map[int]string{}
	for _, n := range []int{small, large} {
		rooms[n] = seedPrivateRoom(t, log, svc, owner, n)
	}
	do := executorWithVars(t, svc)
	load := func(n int) (uint64, time.Duration) {
		return allocatedBy(func() {
			resp := do(owner.ID, `query($id: ID!) { room(id: $id) { members(first: 1) { totalCount } } }`,
				map[string]any{"id": rooms[n]})
			if len(resp.Errors) > 0 {
				t.Fatalf("first query of the room of %d members: %v", n, resp.Errors)
			}
			if want := fmt.Sprintf(`{"room":{"members":{"totalCount":%d}}}`, n+1); string(resp.Data) != want {
				t.Fatalf("first query of the room of %d members: %s, want %s", n, resp.Data, want)
			}
		})
	}
	smallBytes, smallTook := load(small)
	largeBytes, largeTook := load(large)
	ratio := float64(largeBytes) / float64(smallBytes)
	t.Logf("first query (the room's load) of a private room: %d members: %d KiB allocated, %v; %d members: %d KiB, %v; ratio %.1f (linear: ~4)",
		small, smallBytes>>10, smallTook, large, largeBytes>>10, largeTook, ratio)
	if ratio > 8 {
		t.Errorf("loading a private room of %d members allocated %.1f× what one of %d did (%d MiB): quadratic in its members", large, ratio, small, largeBytes>>20)
	}
}
