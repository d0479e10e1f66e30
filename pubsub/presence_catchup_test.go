package pubsub

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// restartNode stops node i of c and starts it again: the presence buckets
// are kept in memory, so it comes back empty and catches up from the
// others while the test goes on.
func restartNode(c *natsCluster, i int) {
	c.t.Helper()
	c.stop(i)
	time.Sleep(300 * time.Millisecond) // long enough for the others to notice
	c.start(i)
}

// TestPresenceWhileANATSNodeCatchesUp: while a restarted NATS node catches
// up, a watch placed on it must not report from what it has stored so
// far: a fresh watch's first report has alice, present all along; running
// watches told to watch anew do not report her gone; and a new replica's
// Presence counts alice's replica alive when it returns.
func TestPresenceWhileANATSNodeCatchesUp(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	logs := logOnEachNode(t, c)
	r0 := openPresence(t, logs[0], PresenceOptions{Replica: "r0", Replicas: 3})
	r1 := openPresence(t, logs[1], PresenceOptions{Replica: "r1", Replicas: 3})
	r0.Enter("room1", "alice")
	var running []*presenceSeen
	for range 12 {
		s := watchPresence(t, r1, "room1")
		s.until(t, 10*time.Second, "alice")
		running = append(running, s)
	}
	alice := []string{"alice"}

	var firstWithout, notAlive, goneReports []string
	firsts, starts := 0, 0
	for round := range 3 {
		restartNode(c, 2)
		r1.rewatchMembers() // as after the follower watched anew
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && firsts < 100*(round+1); {
			firsts++
			seen := make(chan []string, 16)
			w, err := r1.Watch(testCtx(t, 10*time.Second), "room1", func(m []string) { seen <- m })
			if err != nil {
				t.Fatalf("round %d: Watch: %v", round, err)
			}
			select {
			case m := <-seen:
				if !slices.Equal(m, alice) {
					firstWithout = append(firstWithout, fmt.Sprintf("round %d: %q", round, m))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: a watch reported nothing in 5s", round)
			}
			w.Close()

			starts++
			p, err := logs[1].Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: fmt.Sprintf("new%d", starts), Replicas: 3})
			if err != nil {
				t.Fatalf("round %d: Presence: %v", round, err)
			}
			p.mu.Lock()
			alive := p.live["r0"]
			p.mu.Unlock()
			if !alive {
				notAlive = append(notAlive, fmt.Sprintf("round %d, start %d", round, starts))
			}
			if err := p.Close(testCtx(t, 5*time.Second)); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		// The rewatches are spread over up to a second; give them time.
		time.Sleep(2 * time.Second)
		for i, s := range running {
			for drained := false; !drained; {
				select {
				case m := <-s.calls:
					if !slices.Equal(m, alice) {
						goneReports = append(goneReports, fmt.Sprintf("round %d, watch %d: %q", round, i, m))
					}
				default:
					drained = true
				}
			}
		}
	}
	t.Logf("%d fresh watches and %d new Presences while node 2 caught up, in 3 rounds", firsts, starts)
	if len(firstWithout) > 0 {
		t.Errorf("%d of %d first reports lacked alice, present all along: %v", len(firstWithout), firsts, firstWithout)
	}
	if len(goneReports) > 0 {
		t.Errorf("%d reports of watches told to watch anew left alice out, though she never left: %v", len(goneReports), goneReports)
	}
	if len(notAlive) > 0 {
		t.Errorf("%d of %d new Presences did not count alice's replica alive when they returned: %v", len(notAlive), starts, notAlive)
	}
}

// TestOpenKeepsTheLimitWhileANATSNodeCatchesUp: Open changes no partition's
// max_msgs_per_subject while a replica runs (checkLimitKept), and looks
// the replicas up in the in-memory liveness bucket: while a restarted NATS
// node catches up, that look-up must still list the running replica, and
// an Open raising the limit must still be refused.
func TestOpenKeepsTheLimitWhileANATSNodeCatchesUp(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	opts := func(node int, limit int64) Options {
		return Options{URLs: []string{c.url(node)}, Replicas: 3, Partitions: 1, MaxMsgsPerSubject: limit,
			ConnectTimeout: 5 * time.Second, SetupTimeout: 20 * time.Second}
	}
	running := openLog(t, opts(0, 10))
	openPresence(t, running, PresenceOptions{Replica: "r0", Replicas: 3})
	other := openLog(t, opts(1, 10))

	var missed []string
	lookUps, opens := 0, 0
	for round := range 4 {
		restartNode(c, 2)
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && lookUps < 50*(round+1); {
			lookUps++
			alive, err := other.replicasAlive(testCtx(t, 10*time.Second))
			if err != nil {
				t.Fatalf("round %d: replicasAlive: %v", round, err)
			}
			if !slices.Contains(alive, "r0") {
				missed = append(missed, fmt.Sprintf("round %d: %q", round, alive))
			}
			if lookUps%5 != 1 {
				continue
			}
			opens++
			l, err := Open(testCtx(t, 20*time.Second), opts(1, 11))
			switch {
			case err == nil:
				_ = l.Close()
				t.Fatalf("round %d: Open raised max_msgs_per_subject from 10 to 11 under the running replica r0", round)
			case !errors.Is(err, ErrHistoryRaised):
				t.Fatalf("round %d: Open = %v, want ErrHistoryRaised", round, err)
			}
		}
	}
	t.Logf("%d look-ups and %d refused Opens while node 2 caught up, in 4 rounds", lookUps, opens)
	if len(missed) > 0 {
		t.Errorf("%d of %d look-ups of the replicas alive missed r0, alive all along: %v", len(missed), lookUps, missed)
	}
}
