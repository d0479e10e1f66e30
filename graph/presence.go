package graph

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/eventmeta"
	"github.com/heraldhq/herald/graph/model"
)

// Presence is who is present on which topic across the replicas, and the
// typing signals sent on a topic. A room's topic is its ID. In Herald it
// is pubsub.Presence (cmd/herald/presence.go); the server tells it who is
// present through this replica (server.Options.Presence), from the
// subscriptions whose resolvers announce the room (auth.Announce).
type Presence interface {
	// Watch calls fn with every user present on topic, sorted: first
	// those present now, then after each change, one call at a time,
	// until ctx ends or stop is called (which waits for fn to return).
	Watch(ctx context.Context, topic string, fn func(users []string)) (stop func(), err error)
	// Signal tells every watcher of topic's signals, on any replica, that
	// user is typing.
	Signal(ctx context.Context, topic, user string) error
	// WatchSignals calls fn with the user of each signal on topic from
	// now on, one call at a time, until stop is called.
	WatchSignals(topic string, fn func(user string)) (stop func(), err error)
}

var errPresenceUnavailable = &chat.Error{Code: chat.CodeUnavailable, Message: "presence is not available on this server"}

// RoomPresence sends the room's presence: a SNAPSHOT, then batches of
// changes (see presenceFeed). Its subscribers are present in the room
// themselves. A private room's needs membership, checked by the engine
// through the room's gate as for messagePosted.
func (r subscriptionResolver) RoomPresence(ctx context.Context, roomID string) (<-chan graphql.Event[*model.PresenceEvent], error) {
	if r.presence == nil {
		return nil, errPresenceUnavailable
	}
	if err := r.roomExists(ctx, roomID, false); err != nil {
		return nil, err
	}
	// The room's watcher gives its gate (membership: who may be shown
	// typing) and its member removals (which end the removed member's
	// typing, and may end this subscriber's access); its other changes are
	// dropped where they are offered.
	w, err := r.chat.Watch(ctx, chat.RoomTopic(roomID))
	if err != nil {
		return nil, err
	}
	recheck, allowed, err := restrict(ctx, w)
	if err != nil {
		w.Close()
		return nil, err
	}
	// end stops the feed early: without an engine, when the subscriber is
	// removed from the room; or when the room's watcher ended (endedBy).
	parent := ctx
	ctx, end := context.WithCancel(ctx)
	var endedBy atomic.Pointer[chat.Error]
	w.SetOffer(func(c chat.Change) bool {
		return c.Type != chat.MemberRemoved && (allowed == nil || allowed(c.Seq))
	})
	feed := newPresenceFeed(r.opts.PresenceWindow, r.opts.PresenceBurst, r.opts.typingShown())
	feed.members = w.Gate() // before its signals and its run: neither locks to read it
	stopSignals, err := r.presence.WatchSignals(roomID, feed.signal)
	if err != nil {
		end()
		w.Close()
		return nil, &chat.Error{Code: chat.CodeUnavailable, Message: "roomPresence: " + err.Error()}
	}
	stopUsers, err := r.presence.Watch(ctx, roomID, feed.setUsers)
	if err != nil {
		end()
		stopSignals()
		w.Close()
		return nil, &chat.Error{Code: chat.CodeUnavailable, Message: "roomPresence: " + err.Error()}
	}
	auth.Announce(ctx, roomID)
	// The execution is shared: a subscriber joining it later gets the
	// room's state as a SNAPSHOT in the next batch (so do the others).
	auth.OnJoin(ctx, feed.resync)

	go func() {
		defer w.Close()
		for {
			c, err := w.Next(ctx)
			var ended *chat.Error
			if errors.As(err, &ended) && ctx.Err() == nil {
				// The watcher can no longer give the room's changes (the
				// log discarded some it missed): without it no removal
				// would end a removed member's feed, nor their typing. The
				// subscription ends with why, as messagePosted does.
				endedBy.Store(ended)
				end()
				return
			}
			if err != nil {
				return
			}
			if allowed != nil && !allowed(c.Seq) {
				end() // removed from the room, with no engine to end the subscription
				return
			}
			if c.Type == chat.MemberRemoved {
				// A removed member can no longer type here (setTyping
				// refuses them): their typing ends now rather than when
				// it runs out, up to typingShown later.
				feed.removed(c.UserID)
				recheck()
			}
		}
	}()
	out := make(chan graphql.Event[*model.PresenceEvent], eventBuffer)
	go func() {
		defer close(out)
		defer end()
		defer stopSignals()
		defer stopUsers()
		feed.run(ctx, func(ev *model.PresenceEvent) bool {
			select {
			case out <- graphql.Event[*model.PresenceEvent]{Context: presenceEventContext(ctx, ev), Value: ev}:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if why := endedBy.Load(); why != nil {
			select {
			case out <- graphql.Event[*model.PresenceEvent]{Context: eventmeta.WithMeta(parent, eventmeta.Meta{End: why})}:
			case <-parent.Done():
			}
		}
	}()
	return out, nil
}

// presenceEventContext marks a SNAPSHOT as a state: a subscriber joining
// the shared execution (which feed.resync answers with one) starts from
// it, and gets none of the changes already on their way.
func presenceEventContext(ctx context.Context, ev *model.PresenceEvent) context.Context {
	if ev.Kind != model.PresenceKindSnapshot {
		return ctx
	}
	return eventmeta.WithMeta(ctx, eventmeta.Meta{State: true})
}

// typingShown is how long a feed shows a user typing after a signal:
// TypingFor past their last setTyping call, which may have been one the
// throttle took as one with the signal (within TypingEvery after it) and
// sent nothing for. Shown for TypingFor only, a user calling every second
// or so was shown to stop typing before TypingFor had passed since their
// last call.
func (o Options) typingShown() time.Duration { return o.TypingFor + o.TypingEvery }

// SetTyping signals that the viewer is typing in a room; calls closer
// than Options.TypingEvery apart are taken as one.
func (r mutationResolver) SetTyping(ctx context.Context, roomID string) (bool, error) {
	a, err := actor(ctx)
	if err != nil {
		return false, err
	}
	if r.presence == nil {
		return false, errPresenceUnavailable
	}
	if _, ok, err := r.chat.VisibleRoom(ctx, a.ID, roomID); err != nil {
		return false, err
	} else if !ok {
		return false, &chat.Error{Code: chat.CodeNotFound, Message: "room " + roomID + " does not exist"}
	}
	now := time.Now()
	if !r.typing.allow(roomID, a.ID, now) {
		return true, nil
	}
	if err := r.presence.Signal(ctx, roomID, a.ID); err != nil {
		r.typing.forget(roomID, a.ID, now) // the retry asked for is passed on
		return false, &chat.Error{Code: chat.CodeUnavailable, Message: "setTyping: " + err.Error() + "; retry"}
	}
	return true, nil
}

// presenceFeed turns a room's presence, as the cluster reports it, and
// its typing signals into a subscription's events, bounded per window:
//
//   - the first batch is one SNAPSHOT;
//   - after it, a batch goes out at most once per window, holding every
//     change since the last one: a JOINED or LEFT per user whose presence
//     changed, and a TYPING per user who started typing or whose typing
//     ended (typingFor without a signal, or their removal from the room;
//     renewals change nothing);
//   - in a private room, only members type: a signal of a user who is not
//     a member when the batch is built counts for nothing, and a user
//     shown typing who is no longer one stops (see members);
//   - a batch of more than burst changes is sent as one SNAPSHOT, and so
//     is the batch after a subscriber joined the shared execution (resync).
//
// So a subscriber gets at most burst events per window however busy the
// room: with the defaults, 80 a second.
type presenceFeed struct {
	window, typingFor time.Duration
	burst             int
	// members is a private room's gate (nil for a public room): who is a
	// member as this replica has applied the room, a map look-up without
	// a lock. setTyping checks membership before it signals, but a removal
	// applied between that check and the signal, or while the signal is
	// on its way through NATS, reaches the feed first; by the order alone
	// the signal is then one after the removal (added again, typing
	// again), and showed the removed user typing for typingFor. So each
	// batch asks the gate about the users it would show typing. A member
	// added through another replica whose first signal reaches this one
	// before the addition does is shown typing from their next signal.
	// Set before the feed receives or runs, never changed.
	members chat.Gate

	mu       sync.Mutex
	users    []string  // the latest report; nil before the first
	signals  []string  // typing signals since the last batch (or since the start)
	removals []removal // member removals since the last batch, placed among signals
	snap     bool      // a subscriber joined: the next batch is a SNAPSHOT
	wake     chan struct{}
}

// removal is a member's removal from the room, which ends their typing.
// at is how many of the batch's signals came before it: those of the
// removed user are void, and one after it (added again, typing again)
// counts. Kept apart from signals, so a signal costs what it did.
type removal struct {
	user string
	at   int
}

// maxSignals bounds the signals kept between two batches; more than a
// burst of them is sent as a SNAPSHOT anyway. It bounds removals too: one
// that does not fit leaves its user typing until that runs out by itself.
const maxSignals = 1024

func newPresenceFeed(window time.Duration, burst int, typingFor time.Duration) *presenceFeed {
	return &presenceFeed{window: window, burst: burst, typingFor: typingFor, wake: make(chan struct{}, 1)}
}

// setUsers records who is present now; it never blocks.
func (f *presenceFeed) setUsers(users []string) {
	f.mu.Lock()
	f.users = users
	f.mu.Unlock()
	f.poke()
}

// resync makes the next batch a SNAPSHOT, even with nothing changed; it
// never blocks.
func (f *presenceFeed) resync() {
	f.mu.Lock()
	f.snap = true
	f.mu.Unlock()
	f.poke()
}

// signal records that user is typing; it never blocks.
func (f *presenceFeed) signal(user string) {
	f.mu.Lock()
	if len(f.signals) < maxSignals {
		f.signals = append(f.signals, user)
	}
	f.mu.Unlock()
	f.poke()
}

// removed records that user is no longer a member of the room: the next
// batch ends their typing, unless they signal again after it; it never
// blocks.
func (f *presenceFeed) removed(user string) {
	f.mu.Lock()
	if len(f.removals) < maxSignals {
		f.removals = append(f.removals, removal{user: user, at: len(f.signals)})
	}
	f.mu.Unlock()
	f.poke()
}

// notMember reports whether user is not a member of the feed's private
// room now (see members).
func (f *presenceFeed) notMember(user string) bool {
	_, ok := f.members.Access(user)
	return !ok
}

func (f *presenceFeed) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run sends the feed's events with send until ctx ends or send fails.
func (f *presenceFeed) run(ctx context.Context, send func(*model.PresenceEvent) bool) {
	var (
		st       presenceState
		started  bool
		lastSent time.Time
		expiry   = time.NewTimer(time.Hour)
	)
	expiry.Stop()
	defer expiry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-expiry.C:
		}
		if started {
			// One batch per window: what arrives meanwhile joins it.
			if wait := f.window - time.Since(lastSent); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
		}
		f.mu.Lock()
		users, signals, removals, snap := f.users, f.signals, f.removals, f.snap
		if users == nil {
			// Nothing reported yet: the first event is a SNAPSHOT of the
			// first report, with the signals and removals kept until then.
			f.mu.Unlock()
			continue
		}
		f.signals, f.removals, f.snap = nil, nil, false
		f.mu.Unlock()
		now := time.Now()
		var events []*model.PresenceEvent
		// Removed members stop typing first: their LEFT, in this batch or
		// a later one, no longer shows them typing.
		signals, ended := afterRemovals(signals, removals)
		if f.members != nil {
			// After afterRemovals, whose positions count every signal.
			signals = slices.DeleteFunc(signals, f.notMember)
			ended = st.typingNonMembers(f.notMember, ended)
			// A member leaving while shown typing stops typing first: this
			// replica may apply their removal after the presence keys say
			// they left, and their LEFT must not show them typing.
			ended = st.typingLeaving(users, signals, ended)
		}
		st.endTyping(ended, &events, f.burst)
		if !started {
			st.apply(users, signals, now, f.typingFor, nil, 0)
			events = []*model.PresenceEvent{st.snapshot()}
			started = true
		} else {
			events = st.apply(users, signals, now, f.typingFor, &events, f.burst)
			if len(events) > f.burst || snap {
				events = []*model.PresenceEvent{st.snapshot()}
			}
		}
		for _, ev := range events {
			if !send(ev) {
				return
			}
		}
		lastSent = now
		if next, ok := st.nextExpiry(); ok {
			expiry.Reset(max(time.Until(next), 0))
		}
	}
}

// presenceState is what a feed's subscribers were last told.
type presenceState struct {
	present []string             // sorted
	typing  map[string]time.Time // user → when their typing ends
}

// apply moves the state to users present and the typing signals at now,
// and returns, when events is not nil, one event per change appended to
// *events, each with the state right after it: at most burst+1 of them,
// since a batch of more than burst is sent as one SNAPSHOT instead (each
// event holds the whole state: a report that brings thousands of users
// would otherwise build thousands of snapshots to throw away).
func (st *presenceState) apply(users, signals []string, now time.Time, typingFor time.Duration,
	events *[]*model.PresenceEvent, burst int) []*model.PresenceEvent {
	if st.typing == nil {
		st.typing = map[string]time.Time{}
	}
	emit := func(kind model.PresenceKind, user string) { st.emit(events, burst, kind, user) }
	// Left, then joined, each in user order.
	for _, u := range slices.Clone(st.present) {
		if _, ok := slices.BinarySearch(users, u); !ok {
			i, _ := slices.BinarySearch(st.present, u)
			st.present = slices.Delete(st.present, i, i+1)
			emit(model.PresenceKindLeft, u)
		}
	}
	for _, u := range users {
		if i, ok := slices.BinarySearch(st.present, u); !ok {
			st.present = slices.Insert(st.present, i, u)
			emit(model.PresenceKindJoined, u)
		}
	}
	// Typing that ended, in user order, then typing that began. A signal
	// in this batch renews typing that would have ended by now: it came
	// within the window, before it ended, as far as anyone can tell.
	var ended []string
	for u, until := range st.typing {
		if !until.After(now) && !slices.Contains(signals, u) {
			ended = append(ended, u)
		}
	}
	slices.Sort(ended)
	for _, u := range ended {
		delete(st.typing, u)
		emit(model.PresenceKindTyping, u)
	}
	for _, u := range signals {
		_, already := st.typing[u]
		st.typing[u] = now.Add(typingFor)
		if !already {
			emit(model.PresenceKindTyping, u)
		}
	}
	if events == nil {
		return nil
	}
	return *events
}

// emit appends, when events is not nil, an event of kind for user with
// the state as it is now; only burst+1 of them are built (see apply).
func (st *presenceState) emit(events *[]*model.PresenceEvent, burst int, kind model.PresenceKind, user string) {
	if events != nil && len(*events) <= burst {
		ev := st.snapshot()
		ev.Kind, ev.User = kind, &chat.Actor{ID: user}
		*events = append(*events, ev)
	}
}

// endTyping ends the typing of users, removed from the room, with a
// TYPING event (see apply) for each of them who was typing, in order.
func (st *presenceState) endTyping(users []string, events *[]*model.PresenceEvent, burst int) {
	for _, u := range users {
		if _, ok := st.typing[u]; ok {
			delete(st.typing, u)
			st.emit(events, burst, model.PresenceKindTyping, u)
		}
	}
}

// typingNonMembers adds to ended (sorted, as afterRemovals returns it) the
// users st shows typing for whom notMember is true, and returns it sorted:
// a removal the feed has not been told of yet (the gate refuses a removed
// member before the change announcing it reaches the feed), or one that
// did not fit (maxSignals). It costs a look-up per user typing.
func (st *presenceState) typingNonMembers(notMember func(string) bool, ended []string) []string {
	n := len(ended)
	for u := range st.typing {
		if notMember(u) && !slices.Contains(ended[:n], u) {
			ended = append(ended, u)
		}
	}
	if len(ended) > n {
		slices.Sort(ended)
	}
	return ended
}

// typingLeaving adds to ended (sorted) the users st shows present and
// typing who are not in users and have no signal in signals, and returns
// it sorted: their typing ends before their LEFT.
func (st *presenceState) typingLeaving(users, signals, ended []string) []string {
	n := len(ended)
	for _, u := range st.present {
		if _, typing := st.typing[u]; !typing || slices.Contains(signals, u) || slices.Contains(ended[:n], u) {
			continue
		}
		if _, still := slices.BinarySearch(users, u); !still {
			ended = append(ended, u)
		}
	}
	if len(ended) > n {
		slices.Sort(ended)
	}
	return ended
}

// afterRemovals applies a batch's member removals to its signals, in the
// order they came: it returns the signals that still count (a removed
// user's before their last removal do not) and the removed users with no
// signal after their last removal, whose typing ends, sorted. Without
// removals, the common case, it returns signals as they are.
func afterRemovals(signals []string, removals []removal) (counted, ended []string) {
	if len(removals) == 0 {
		return signals, nil
	}
	last := make(map[string]int, len(removals)) // removed user → signals before their last removal
	for _, r := range removals {
		last[r.user] = r.at
	}
	counted = make([]string, 0, len(signals))
	for i, u := range signals {
		if at, removed := last[u]; removed {
			if i < at {
				continue // the removal came after it
			}
			delete(last, u) // typing again after their removal
		}
		counted = append(counted, u)
	}
	return counted, slices.Sorted(maps.Keys(last))
}

// snapshot is a SNAPSHOT of the state.
func (st *presenceState) snapshot() *model.PresenceEvent {
	users := make([]*chat.Actor, len(st.present))
	for i, u := range st.present {
		users[i] = &chat.Actor{ID: u}
	}
	typing := make([]*chat.Actor, 0, len(st.typing))
	for _, u := range slices.Sorted(maps.Keys(st.typing)) {
		typing = append(typing, &chat.Actor{ID: u})
	}
	return &model.PresenceEvent{Kind: model.PresenceKindSnapshot, Count: len(users), Users: users, Typing: typing}
}

// nextExpiry is when the first typing state ends.
func (st *presenceState) nextExpiry() (time.Time, bool) {
	var next time.Time
	for _, until := range st.typing {
		if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	return next, !next.IsZero()
}
