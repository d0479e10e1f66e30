package pubsub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// presenceWatchGoroutine names, in a goroutine dump, the goroutine a
// PresenceWatch calls its function on.
const presenceWatchGoroutine = "pubsub.(*PresenceWatch).run"

// goroutinesEnd fails t unless the goroutines whose stacks hold name are
// soon back to base: a goroutine past the done its owner's Close waited for
// may still show in a dump for a moment (seen under load), so it gets 2 s
// to be gone; one that never ends still fails.
func goroutinesEnd(t *testing.T, name string, base int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		g, dump := closeTestGoroutines(name)
		if g <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines of %s 2s after Presence.Close (was %d)\n%s", g, name, base, dump)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// openAcrossClose has 4 workers open up to perWorker watches each with
// open while p closes: once some are in, it closes p, calls closed with
// the watches returned so far (at once, before the workers end), and
// returns every watch open returned. open may fail only with
// ErrPresenceClosed.
func openAcrossClose[W any](t *testing.T, p *Presence, perWorker int, open func() (W, error), closed func([]W)) []W {
	t.Helper()
	const workers = 4
	var (
		mu      sync.Mutex
		watches []W
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range perWorker {
				w, err := open()
				if err != nil {
					if !errors.Is(err, ErrPresenceClosed) {
						t.Errorf("opening a watch: %v, want ErrPresenceClosed or a watch", err)
					}
					return
				}
				mu.Lock()
				watches = append(watches, w)
				mu.Unlock()
			}
		}()
	}
	close(start)
	// Close once some watches are in, while the workers still ask for more.
	waitFor(t, 5*time.Second, "the first watches", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(watches) >= workers
	})
	if err := p.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Presence.Close: %v", err)
	}
	mu.Lock()
	closed(watches)
	mu.Unlock()
	wg.Wait()
	return watches
}

// TestPresenceCloseWaitsForPresenceWatches: Presence.Close ends every
// PresenceWatch of it, as it ends its SignalWatches: it returns only once
// the function is no longer running and the watch's goroutine has ended,
// the function is not called again once Close has begun (not even for a
// change that was waiting while it ran), and the watch's own Close is then
// a no-op. While Close waits, the function may end its watch the way its
// doc says (ending ctx) and use the Presence, and another goroutine may
// close the watch, without either waiting for the other forever.
func TestPresenceCloseWaitsForPresenceWatches(t *testing.T) {
	for _, tc := range []struct {
		name        string
		closeWatch  bool // the caller closes the watch before the Presence
		blockedInFn bool // Presence.Close comes while fn is running
		pending     bool // a change of the set waits while fn runs
		closeDuring bool // another goroutine closes the watch while Presence.Close waits
		fnEnds      bool // fn, let go while Presence.Close waits, ends ctx and uses the Presence
	}{
		{name: "left open"},
		{name: "closed first", closeWatch: true},
		{name: "fn running at Close", blockedInFn: true},
		{name: "fn running at Close, a change pending", blockedInFn: true, pending: true},
		{name: "fn running at Close, the watch closed meanwhile", blockedInFn: true, closeDuring: true},
		{name: "fn running at Close ends its watch and uses the Presence", blockedInFn: true, fnEnds: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openEmbedded(t, Options{})
			p1 := openPresence(t, l, PresenceOptions{Replica: "r1"})
			p2 := openPresence(t, l, PresenceOptions{Replica: "r2", Coalesce: 10 * time.Millisecond})
			fence := watchPresence(t, p2, "room1") // when it has a set, p1's watch has been sent it too
			fence.until(t, 5*time.Second)
			baseG, _ := closeTestGoroutines(presenceWatchGoroutine) // fence's included

			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var (
				calls       atomic.Int32
				releaseOnce sync.Once
				fnErrs      = make(chan error, 4) // what fn met while Presence.Close waited
			)
			entered, release := make(chan struct{}, 1), make(chan struct{})
			let := func() { releaseOnce.Do(func() { close(release) }) }
			w, err := p1.Watch(ctx, "room1", func([]string) {
				if calls.Add(1) != 1 {
					return
				}
				entered <- struct{}{}
				if !tc.blockedInFn {
					return
				}
				<-release
				if tc.fnEnds {
					cancel()
					p1.Enter("room1", "dave")
					p1.Leave("room1", "dave")
					if err := p1.Signal(testCtx(t, 5*time.Second), "room1", "dave"); err != nil {
						fnErrs <- err
					}
					if _, err := p1.Watch(t.Context(), "room1", func([]string) {}); !errors.Is(err, ErrPresenceClosed) {
						fnErrs <- err
					}
					if _, err := p1.WatchSignals("room1", func(string) {}); !errors.Is(err, ErrPresenceClosed) {
						fnErrs <- err
					}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				let()
				w.Close()
			})
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the watch never reported the topic's first set")
			}
			if tc.pending {
				p2.Enter("room1", "bob")
				fence.until(t, 5*time.Second, "bob")
				time.Sleep(100 * time.Millisecond) // p1's watch has it waiting too
			}
			if tc.closeWatch {
				w.Close()
			}

			closed := make(chan error, 1)
			go func() { closed <- p1.Close(testCtx(t, 5*time.Second)) }()
			watchClosed := make(chan struct{})
			if tc.blockedInFn {
				if tc.closeDuring {
					go func() { w.Close(); close(watchClosed) }()
				}
				select {
				case err := <-closed:
					g, dump := closeTestGoroutines(presenceWatchGoroutine)
					t.Fatalf("Presence.Close returned (err %v) while a PresenceWatch's function was still running; "+
						"%d PresenceWatch goroutines alive after it (%d before the watch)\n%s", err, g, baseG, dump)
				case <-watchClosed:
					t.Fatal("PresenceWatch.Close returned while its function was still running")
				case <-time.After(200 * time.Millisecond):
				}
				let()
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Presence.Close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Presence.Close did not return after the function did")
			}
			if tc.closeDuring {
				select {
				case <-watchClosed:
				case <-time.After(5 * time.Second):
					t.Fatal("PresenceWatch.Close, called while Presence.Close waited, did not return")
				}
			}
			close(fnErrs)
			for err := range fnErrs {
				t.Errorf("the function, while Presence.Close waited: %v", err)
			}

			select {
			case <-w.done:
			default:
				t.Error("the PresenceWatch was still running when Presence.Close returned")
			}
			goroutinesEnd(t, presenceWatchGoroutine, baseG)
			p1.mu.Lock()
			kept := len(p1.watches)
			p1.mu.Unlock()
			if kept != 0 {
				t.Errorf("the closed Presence still keeps %d PresenceWatches", kept)
			}
			want := []string{"carol"}
			if tc.pending {
				want = []string{"bob", "carol"}
			}
			p2.Enter("room1", "carol")
			fence.until(t, 5*time.Second, want...)
			time.Sleep(100 * time.Millisecond)
			if n := calls.Load(); n != 1 {
				t.Errorf("the function was called %d times, want once: the watch reported a set after Presence.Close began", n)
			}

			done := make(chan struct{})
			go func() { w.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("PresenceWatch.Close after Presence.Close did not return")
			}
			if _, err := p1.Watch(t.Context(), "room1", func([]string) {}); !errors.Is(err, ErrPresenceClosed) {
				t.Errorf("Watch on a closed Presence: err = %v, want ErrPresenceClosed", err)
			}
		})
	}
}

// TestPresenceWatchRacingPresenceClose: a Watch that runs while its
// Presence closes either fails with ErrPresenceClosed or returns a watch
// that Close has ended and waited for; none is left running, and none
// reports a set after Close returned.
func TestPresenceWatchRacingPresenceClose(t *testing.T) {
	l := openEmbedded(t, Options{})
	p := openPresence(t, l, PresenceOptions{Replica: "r1"})
	baseG, _ := closeTestGoroutines(presenceWatchGoroutine)

	var closeReturned, late atomic.Bool
	fn := func([]string) {
		if closeReturned.Load() {
			late.Store(true)
		}
	}
	running := 0
	watches := openAcrossClose(t, p, 20, func() (*PresenceWatch, error) { return p.Watch(t.Context(), "room1", fn) },
		func(opened []*PresenceWatch) {
			closeReturned.Store(true)
			for _, w := range opened {
				select {
				case <-w.done:
				default:
					running++
				}
			}
		})

	t.Logf("%d watches returned before or during Presence.Close", len(watches))
	if running > 0 {
		t.Errorf("%d of the PresenceWatches Watch had returned were still running when Presence.Close returned", running)
	}
	for _, w := range watches {
		select {
		case <-w.done:
		default:
			t.Errorf("a watch that Watch returned while Presence.Close ran is running: Close neither refused it nor waited for it")
		}
	}
	goroutinesEnd(t, presenceWatchGoroutine, baseG)
	if late.Load() {
		t.Error("a PresenceWatch reported a set after Presence.Close returned")
	}
	for _, w := range watches {
		w.Close()
	}
}
