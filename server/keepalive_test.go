package server

import (
	"testing"
	"time"
)

// TestAliveSchedule: acknowledged sockets are due once per aliveTick on a
// fixed schedule, however late each init tick fires, so a token's expiry
// is enforced within aliveTick of it; after a stall the schedule starts
// afresh rather than firing a burst.
func TestAliveSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const tick, every = 250 * time.Millisecond, time.Second
	tests := []struct {
		name  string
		late  func(n int) time.Duration // how late init tick n fires
		ticks int
		want  []time.Duration // due ticks, as offsets from t0
	}{
		{"punctual ticks", func(int) time.Duration { return 0 }, 16,
			[]time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}},
		{"every tick a little late", func(int) time.Duration { return 3 * time.Millisecond }, 16,
			[]time.Duration{1*time.Second + 3*time.Millisecond, 2*time.Second + 3*time.Millisecond,
				3*time.Second + 3*time.Millisecond, 4*time.Second + 3*time.Millisecond}},
		{"lateness that varies", func(n int) time.Duration { return time.Duration(n%3) * 20 * time.Millisecond }, 16,
			[]time.Duration{1*time.Second + 20*time.Millisecond, 2*time.Second + 40*time.Millisecond,
				3 * time.Second, 4*time.Second + 20*time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := aliveSchedule{every: every, next: t0.Add(every)}
			var got []time.Duration
			for n := 1; n <= tt.ticks; n++ {
				now := t0.Add(time.Duration(n)*tick + tt.late(n))
				if s.reached(now) {
					got = append(got, now.Sub(t0))
				}
			}
			if len(got) != len(tt.want) {
				t.Fatalf("due at %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("due at %v, want %v", got, tt.want)
				}
			}
		})
	}
	t.Run("a stall starts afresh", func(t *testing.T) {
		s := aliveSchedule{every: every, next: t0.Add(every)}
		if !s.reached(t0.Add(5 * time.Second)) {
			t.Fatal("a tick 4 s past due was not due")
		}
		if s.reached(t0.Add(5*time.Second + 250*time.Millisecond)) {
			t.Fatal("the tick after a stall was due again at once")
		}
		if !s.reached(t0.Add(6 * time.Second)) {
			t.Fatal("the schedule did not go on from the stall")
		}
	})
}
