package server

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// mapGate admits the users of a map, each since a position; replaced
// whole, as a domain's gate is.
type mapGate struct {
	access atomic.Pointer[map[string]uint64]
}

func newMapGate(access map[string]uint64) *mapGate {
	g := &mapGate{}
	g.set(access)
	return g
}

func (g *mapGate) set(access map[string]uint64) { g.access.Store(&access) }

func (g *mapGate) Access(user string) (uint64, bool) {
	since, ok := (*g.access.Load())[user]
	return since, ok
}

// TestGatedExecutionAdmitsAndAllows: what a gated execution does with a
// member and an event, as the access changes under it.
func TestGatedExecutionAdmitsAndAllows(t *testing.T) {
	tests := []struct {
		name          string
		viewer        string
		atJoin, later map[string]uint64
		pos           uint64
		admitted      bool
		deliver, keep bool
	}{
		{name: "member, event after joining", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, pos: 6,
			admitted: true, deliver: true, keep: true},
		{name: "member, event at joining", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, pos: 5,
			admitted: true, deliver: false, keep: true},
		{name: "member, event before joining", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, pos: 2,
			admitted: true, deliver: false, keep: true},
		{name: "member, result without position", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, pos: 0,
			admitted: true, deliver: true, keep: true},
		{name: "creator, since 0", viewer: "ann", atJoin: map[string]uint64{"ann": 0}, pos: 1,
			admitted: true, deliver: true, keep: true},
		{name: "removed", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, later: map[string]uint64{}, pos: 9,
			admitted: true, deliver: false, keep: false},
		{name: "removed and added again", viewer: "bob", atJoin: map[string]uint64{"bob": 5}, later: map[string]uint64{"bob": 8}, pos: 9,
			admitted: true, deliver: false, keep: false},
		{name: "non-member", viewer: "eve", atJoin: map[string]uint64{"bob": 5}, pos: 9,
			admitted: false, deliver: false, keep: false},
		{name: "anonymous", viewer: "", atJoin: map[string]uint64{"bob": 5}, pos: 9,
			admitted: false, deliver: false, keep: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := newMapGate(tt.atJoin)
			e := &execution{gate: gate, gated: true}
			op := &operation{viewer: tt.viewer}
			if got := e.admit(op); got != tt.admitted {
				t.Fatalf("admit = %v, want %v", got, tt.admitted)
			}
			if tt.later != nil {
				gate.set(tt.later)
			}
			if deliver, keep := e.allows(op, tt.pos); deliver != tt.deliver || keep != tt.keep {
				t.Fatalf("allows = %v, %v; want %v, %v", deliver, keep, tt.deliver, tt.keep)
			}
		})
	}

	t.Run("a second execution admits under the same access only", func(t *testing.T) {
		gate := newMapGate(map[string]uint64{"bob": 5})
		live, replay := &execution{gate: gate}, &execution{gate: gate}
		op := &operation{viewer: "bob"}
		if !live.admit(op) {
			t.Fatal("refused by the first")
		}
		gate.set(map[string]uint64{"bob": 8})
		if replay.admit(op) {
			t.Fatal("admitted by the second under another access")
		}
	})
}

// TestGatedDeliveryAllocatesNothing: deciding each member's delivery of
// a gated execution allocates nothing.
func TestGatedDeliveryAllocatesNothing(t *testing.T) {
	access := map[string]uint64{}
	for i := range 1000 {
		access[fmt.Sprintf("member%d", i)] = uint64(i)
	}
	e := &execution{gate: newMapGate(access), gated: true}
	for user := range access {
		op := &operation{viewer: user}
		e.admit(op)
		e.members = append(e.members, op)
	}
	delivered := 0
	if n := testing.AllocsPerRun(10, func() {
		for _, op := range e.members {
			if deliver, _ := e.allows(op, 500); deliver {
				delivered++
			}
		}
	}); n != 0 {
		t.Fatalf("%v allocations per event for 1,000 members, want 0", n)
	}
	if delivered == 0 {
		t.Fatal("nothing delivered")
	}
}
