package pubsub

import (
	"errors"
	"testing"
	"time"
)

// signalWatchGoroutine and noticeListenerGoroutine name, in a goroutine
// dump, the goroutine a SignalWatch or a NoticeListener hands its messages
// to its function on.
const (
	signalWatchGoroutine    = "pubsub.(*Presence).WatchSignals.func"
	noticeListenerGoroutine = "pubsub.(*Log).ListenNotices.func"
)

// TestSignalWatchEndsWithPresenceClose: Presence.Close ends every
// SignalWatch of it, as it ends its PresenceWatches: the subscription is
// gone, the function is called no more, its goroutine has ended by the
// time Close returns (NATS never closes the channel it feeds, not even at
// Log.Close), and the watch's own Close is then a no-op. A watch closed
// before is not closed again.
func TestSignalWatchEndsWithPresenceClose(t *testing.T) {
	for _, tc := range []struct {
		name        string
		closeWatch  bool // the caller closes the watch before the Presence
		blockedInFn bool // Presence.Close comes while fn is running
	}{
		{name: "left open"},
		{name: "left open, fn running at Close", blockedInFn: true},
		{name: "closed first", closeWatch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openEmbedded(t, Options{})
			p1 := openPresence(t, l, PresenceOptions{Replica: "r1"})
			p2 := openPresence(t, l, PresenceOptions{Replica: "r2"})
			fence := make(chan string, 16) // p2's own watch: when it has a signal, sw has been sent it too
			fw, err := p2.WatchSignals("room1", func(m string) { fence <- m })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(fw.Close)
			baseG, _ := closeTestGoroutines(signalWatchGoroutine) // fw's included

			got := make(chan string, 16)
			entered, release := make(chan struct{}, 16), make(chan struct{})
			sw, err := p1.WatchSignals("room1", func(m string) {
				got <- m
				if tc.blockedInFn {
					entered <- struct{}{}
					<-release
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				close(release)
				sw.Close()
			})
			signal := func(member string) {
				t.Helper()
				if err := p2.Signal(testCtx(t, 5*time.Second), "room1", member); err != nil {
					t.Fatal(err)
				}
				select {
				case <-fence:
				case <-time.After(5 * time.Second):
					t.Fatalf("the signal %q never reached a watch of the same topic", member)
				}
			}

			signal("before")
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no signal before Close")
			}
			if tc.closeWatch {
				sw.Close()
			}

			closed := make(chan error, 1)
			if tc.blockedInFn {
				<-entered
				go func() { closed <- p1.Close(testCtx(t, 5*time.Second)) }()
				select {
				case err := <-closed:
					t.Fatalf("Presence.Close returned (%v) while the SignalWatch's function was still running", err)
				case <-time.After(200 * time.Millisecond):
				}
				release <- struct{}{}
			} else {
				closed <- p1.Close(testCtx(t, 5*time.Second))
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("Presence.Close: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Presence.Close did not return")
			}

			if sw.sub.IsValid() {
				t.Error("the SignalWatch's NATS subscription outlived Presence.Close")
			}
			// Its goroutine may still show in a dump for a moment after the
			// Done that Close waited for (goroutinesEnd).
			goroutinesEnd(t, signalWatchGoroutine, baseG)
			p1.mu.Lock()
			kept := len(p1.signals)
			p1.mu.Unlock()
			if kept != 0 {
				t.Errorf("the closed Presence still keeps %d SignalWatches", kept)
			}
			signal("after")
			select {
			case m := <-got:
				t.Errorf("the SignalWatch of a closed Presence called its function with %q", m)
			case <-time.After(200 * time.Millisecond):
			}

			done := make(chan struct{})
			go func() { sw.Close(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("SignalWatch.Close after Presence.Close did not return")
			}
			if _, err := p1.WatchSignals("room1", func(string) {}); !errors.Is(err, ErrPresenceClosed) {
				t.Errorf("WatchSignals on a closed Presence: err = %v, want ErrPresenceClosed", err)
			}
		})
	}
}

// TestWatchSignalsRacingPresenceClose: a WatchSignals that runs while its
// Presence closes either fails with ErrPresenceClosed or returns a watch
// that Close has ended; none is left running.
func TestWatchSignalsRacingPresenceClose(t *testing.T) {
	l := openEmbedded(t, Options{})
	p := openPresence(t, l, PresenceOptions{Replica: "r1"})
	baseG, _ := closeTestGoroutines(signalWatchGoroutine)

	watches := openAcrossClose(t, p, 50, func() (*SignalWatch, error) { return p.WatchSignals("room1", func(string) {}) },
		func([]*SignalWatch) {})
	running := 0
	for _, sw := range watches {
		if sw.sub.IsValid() {
			running++
		}
	}
	if running > 0 {
		t.Errorf("%d of the %d SignalWatches WatchSignals returned still subscribed after Presence.Close", running, len(watches))
	}
	goroutinesEnd(t, signalWatchGoroutine, baseG)
}

// TestNoticeListenerEndsWithLogClose: a NoticeListener left open ends with
// its Log's Close, as a Live does, rather than waiting forever on a channel
// NATS never closes; its own Close afterwards returns at once, without
// error.
func TestNoticeListenerEndsWithLogClose(t *testing.T) {
	l := openEmbedded(t, Options{})
	baseG, _ := closeTestGoroutines(noticeListenerGoroutine)
	got := make(chan string, 4)
	nl, err := l.ListenNotices("disconnect", func(data []byte) { got <- string(data) })
	if err != nil {
		t.Fatal(err)
	}
	if err := l.PublishNotice(testCtx(t, 5*time.Second), "disconnect", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no notice before Close")
	}

	if err := l.Close(); err != nil {
		t.Fatalf("Log.Close: %v", err)
	}
	waitFor(t, 5*time.Second, "the NoticeListener's goroutine to end after Log.Close", func() bool {
		g, _ := closeTestGoroutines(noticeListenerGoroutine)
		return g <= baseG
	})
	done := make(chan error, 1)
	go func() { done <- nl.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("NoticeListener.Close after Log.Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NoticeListener.Close after Log.Close did not return")
	}
	if _, err := l.ListenNotices("disconnect", func([]byte) {}); err == nil {
		t.Error("ListenNotices on a closed Log returned a listener")
	}
}
