package library

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// laggingLog is a replica's view of the event log whose reads, after
// the first one, wait until released: the replica is busy reading the log
// (after a Lost signal, say, or the one-second recheck) while another
// replica writes, so it is behind the log for a while.
type laggingLog struct {
	*pubsub.Log
	reads    atomic.Int32
	blocking sync.Once
	blocked  chan struct{} // closed when a read after the first waits
	release  chan struct{}
}

func (l *laggingLog) ReadKey(ctx context.Context, key string, fromSeq uint64, fn func(pubsub.Entry) error) (uint64, error) {
	if l.reads.Add(1) >= 2 {
		l.blocking.Do(func() { close(l.blocked) })
		select {
		case <-l.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return l.Log.ReadKey(ctx, key, fromSeq, fn)
}

// TestRefusalJudgedAfterReadingTheLog shows that a replica behind the log
// (reading it) when another replica adds an article and changes another
// does not refuse commands the log would take: a command its copy refuses
// is judged again once a read of the log begun after it has ended. It
// refused at once, NOT_FOUND for an article the log holds and CONFLICT "at
// version 1" for one at version 2, which a client reading back from that
// replica could not get past.
func TestRefusalJudgedAfterReadingTheLog(t *testing.T) {
	log := openLog(t)
	a := startLibrary(t, log)
	lagging := &laggingLog{Log: log, blocked: make(chan struct{}), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(lagging.release) }) }
	t.Cleanup(release) // before B's Run is stopped (cleanups run last first)
	b := startLibrary(t, lagging)
	t.Cleanup(release)

	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	author, err := a.CreateAuthor(ctx, "Ada", "Lovelace")
	if err != nil {
		t.Fatal(err)
	}
	known, err := a.AddArticle(ctx, author.ID, "Known", "v1")
	if err != nil {
		t.Fatal(err)
	}
	// B has seen the article (live), then starts its recheck read.
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := b.Article(known.ID); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B never applied the article")
		}
	}
	select {
	case <-lagging.blocked:
	case <-time.After(waitLimit):
		t.Fatal("replica B never read the log again")
	}
	// A moves on while B reads.
	fresh, err := a.AddArticle(ctx, author.ID, "Fresh", "v1")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := a.ChangeArticleText(ctx, known.ID, "v2", nil)
	if err != nil || v2.Version != 2 {
		t.Fatalf("change on A: %+v, %v", v2, err)
	}
	// B's read ends a moment later: a command may wait for it.
	go func() {
		time.Sleep(300 * time.Millisecond)
		release()
	}()

	var failures []string
	if _, err := b.ChangeArticleText(ctx, fresh.ID, "changed on B", nil); err != nil {
		failures = append(failures, fmt.Sprintf("changing article %s, which the log holds: %v (%s)", fresh.ID, err, code(err)))
	}
	version := 2 // what the client just read from A
	if _, err := b.ChangeArticleText(ctx, known.ID, "v3", &version); err != nil {
		failures = append(failures, fmt.Sprintf("changing article %s at version 2, which it is at in the log: %v (%s)", known.ID, err, code(err)))
	}
	if len(failures) > 0 {
		t.Fatalf("replica B, a moment behind the log, refused commands the log would take:\n%s", strings.Join(failures, "\n"))
	}
}

// lostAckLog stores its first append, then reports it failed, as when
// the acknowledgement does not come back before the deadline (nats.go's
// Publish returns the context's error; the message is stored).
type lostAckLog struct {
	*pubsub.Log
	appends atomic.Int32
}

func (l *lostAckLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	res, err := l.Log.AppendKeyed(ctx, key, rest, data, o)
	if l.appends.Add(1) == 1 && err == nil {
		return pubsub.AppendResult{}, fmt.Errorf("append to key %q: %w", key, context.DeadlineExceeded)
	}
	return res, err
}

// TestAppendOfUnknownOutcomeSaysReadBack shows that an append whose
// acknowledgement was lost (the event stored) is not answered "retry
// later": a client doing as told stored the author twice. The answer says
// to read back before repeating the command.
func TestAppendOfUnknownOutcomeSaysReadBack(t *testing.T) {
	lib := startLibrary(t, &lostAckLog{Log: openLog(t)})
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	_, err := lib.CreateAuthor(ctx, "Ada", "Lovelace")
	if err == nil || !strings.Contains(err.Error(), "read back before repeating") {
		t.Errorf("an append of unknown outcome answered %v, want an error saying to read back before repeating", err)
	}
	if err != nil && strings.Contains(err.Error(), "retry") {
		// The client does as the error says.
		if _, err := lib.CreateAuthor(ctx, "Ada", "Lovelace"); err != nil {
			t.Fatalf("the retry failed: %v", err)
		}
	}
	// Let the library apply whatever the log holds.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && len(lib.Authors()) < 2; {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(lib.Authors()); n != 1 {
		t.Fatalf("one createAuthor whose append outcome was unknown (first answer: %v) left %d authors: the error invited a retry of a stored command", err, n)
	}
}
