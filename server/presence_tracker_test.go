package server

import (
	"slices"
	"testing"
)

// recordingPresence records what the engine tells a Presence.
type recordingPresence struct{ calls []string }

func (p *recordingPresence) Enter(topic, user string) {
	p.calls = append(p.calls, "enter "+topic+" "+user)
}
func (p *recordingPresence) Leave(topic, user string) {
	p.calls = append(p.calls, "leave "+topic+" "+user)
}

// TestPresenceTracker: Presence hears of each identified subscription
// entering and leaving its topic once (it counts a user's tabs), never of
// anonymous subscribers; leaving twice is leaving once.
func TestPresenceTracker(t *testing.T) {
	type step struct {
		enter bool
		op    int    // index into ops
		topic string // for enter
	}
	ops := func() []*operation {
		return []*operation{{viewer: "alice"}, {viewer: "alice"}, {viewer: "bob"}, {viewer: ""}}
	}
	tests := []struct {
		name  string
		steps []step
		want  []string
	}{
		{"one subscription", []step{{true, 0, "r"}, {false, 0, ""}}, []string{"enter r alice", "leave r alice"}},
		{"two tabs, each told", []step{{true, 0, "r"}, {true, 1, "r"}, {false, 0, ""}, {false, 1, ""}},
			[]string{"enter r alice", "enter r alice", "leave r alice", "leave r alice"}},
		{"two users", []step{{true, 0, "r"}, {true, 2, "r"}, {false, 0, ""}},
			[]string{"enter r alice", "enter r bob", "leave r alice"}},
		{"two topics", []step{{true, 0, "r"}, {true, 1, "s"}, {false, 0, ""}},
			[]string{"enter r alice", "enter s alice", "leave r alice"}},
		{"anonymous is nobody", []step{{true, 3, "r"}, {false, 3, ""}}, nil},
		{"no topic is no presence", []step{{true, 0, ""}, {false, 0, ""}}, nil},
		{"leaving twice", []step{{true, 0, "r"}, {true, 1, "r"}, {false, 0, ""}, {false, 0, ""}},
			[]string{"enter r alice", "enter r alice", "leave r alice"}},
		{"entering twice", []step{{true, 0, "r"}, {true, 0, "r"}, {false, 0, ""}},
			[]string{"enter r alice", "leave r alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &recordingPresence{}
			c := newPresenceTracker(p)
			o := ops()
			for _, s := range tt.steps {
				if s.enter {
					c.enter(o[s.op], s.topic)
				} else {
					c.leave(o[s.op])
				}
			}
			if !slices.Equal(p.calls, tt.want) {
				t.Fatalf("Presence heard %q, want %q", p.calls, tt.want)
			}
		})
	}
	t.Run("no Presence", func(t *testing.T) {
		c := newPresenceTracker(nil)
		op := &operation{viewer: "alice"}
		c.enter(op, "r") // nil-safe
		c.leave(op)
		if op.presence != "" {
			t.Fatal("counted without a Presence")
		}
	})
}
