package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A key-value watch is an ordered consumer of one replica, which
// nats-server places on any replica of the bucket's stream, not on its
// leader; and nats.go's nil entry after the initial values says only that
// the watch has delivered what that replica had stored. A replica catching
// up (a NATS node restarted: the presence buckets are kept in memory, so it
// starts empty) gives a watch too few initial values: a first report
// without users present all along, a rewatch reporting them gone, the
// replicas alive without one that is (and Open then changing the history
// limit under it).
//
// So a watch's initial values count as all in (catchUp) only once its nil
// entry has come and it has delivered the leader's last revision of the
// watched keys, asked when the watch started and again once that is
// reached: a replica catching up is sent what the leader holds at that
// moment, so a key rewritten since the first question comes after it. A
// watch still short of the leader watchLagSwitch after its nil entry is
// started anew, on a replica chosen anew: entries a replica copies in while
// it catches up do not wake the watch's consumer.

// watchLagSwitch is how long a watch whose replica has not stored what
// the bucket's leader holds is kept before it is started anew.
const watchLagSwitch = 250 * time.Millisecond

// errWatchBehind is readInitial's when its watch's replica stays behind
// the bucket's leader for watchLagSwitch.
var errWatchBehind = errors.New("the watch's replica has not stored what the bucket's leader holds")

// catchUp follows how far a key-value watch's initial values have come.
type catchUp struct {
	ask    func(context.Context) (uint64, error) // the leader's last revision of the watched keys
	until  uint64                                // what ask said last
	rev    uint64                                // the highest revision the watch delivered
	marker bool                                  // the watch's nil entry came
}

// newCatchUp asks the leader where a watch about to start must get to.
func newCatchUp(ctx context.Context, ask func(context.Context) (uint64, error)) (*catchUp, error) {
	until, err := ask(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask the bucket's leader for its last revision: %w", err)
	}
	return &catchUp{ask: ask, until: until}, nil
}

// saw records an entry of the watch (nil: its marker).
func (c *catchUp) saw(e jetstream.KeyValueEntry) {
	if e == nil {
		c.marker = true
		return
	}
	c.rev = max(c.rev, e.Revision())
}

// done reports whether the initial values are all in; behind, whether the
// watch's replica is short of what the leader holds (it may be only a
// moment behind). Once the watch has reached the revision asked, done asks
// again, and if the leader has moved on, waits for that too.
func (c *catchUp) done(ctx context.Context) (done, behind bool, err error) {
	if !c.marker {
		return false, false, nil
	}
	if c.rev < c.until {
		return false, true, nil
	}
	last, err := c.ask(ctx)
	if err != nil {
		return false, false, fmt.Errorf("ask the bucket's leader for its last revision: %w", err)
	}
	if last > c.rev {
		c.until = last
		return false, true, nil
	}
	return true, false, nil
}

// readInitial hands apply w's initial values until they are all in (see
// catchUp), or returns errWatchBehind when w's replica is still behind the
// leader watchLagSwitch after w's marker, or an error when ctx ends or w
// does.
func readInitial(ctx context.Context, w jetstream.KeyWatcher, c *catchUp, apply func(jetstream.KeyValueEntry)) error {
	var lag <-chan time.Time // runs once the watch is found behind
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lag:
			return errWatchBehind
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("the watch ended")
			}
			c.saw(e)
			if e != nil {
				apply(e)
			}
		}
		done, behind, err := c.done(ctx)
		switch {
		case err != nil:
			return err
		case done:
			return nil
		case behind && lag == nil:
			t := time.NewTimer(watchLagSwitch)
			defer t.Stop()
			lag = t.C
		}
	}
}

// watchCaughtUp starts a watch with start, after asking the leader with
// ask, and hands apply its initial values until they are all in; a watch
// whose replica stays behind is stopped, reset is called, and another one
// started, until ctx ends. It returns the watch, which goes on with the
// updates.
func watchCaughtUp(ctx context.Context, ask func(context.Context) (uint64, error),
	start func() (jetstream.KeyWatcher, error), reset func(), apply func(jetstream.KeyValueEntry),
) (jetstream.KeyWatcher, error) {
	for {
		c, err := newCatchUp(ctx, ask)
		if err != nil {
			return nil, err
		}
		w, err := start()
		if err != nil {
			return nil, err
		}
		err = readInitial(ctx, w, c, apply)
		if err == nil {
			return w, nil
		}
		_ = w.Stop()
		if !errors.Is(err, errWatchBehind) {
			return nil, err
		}
		reset()
	}
}

// leaderRevision is the ask of a catchUp for the keys of bucket that keys
// matches (a key-value filter: "topic.>", or ">" for all): the leader's
// last revision of them, 0 for none. It is asked again while a leader
// election leaves it unanswered, until ctx ends.
func leaderRevision(nc *nats.Conn, log *slog.Logger, bucket, keys string) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) {
		var last uint64
		err := untilElected(ctx, log, "the look-up of a presence bucket's last revision", func(ctx context.Context) error {
			var err error
			last, err = lastSeqOf(ctx, nc, kvStreamPrefix+bucket, kvSubjectPrefix+bucket+"."+keys)
			return err
		})
		return last, err
	}
}

// A key-value bucket's stream and its keys' subjects, as nats.go names them.
const (
	kvStreamPrefix  = "KV_"
	kvSubjectPrefix = "$KV."
)
