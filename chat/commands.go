package chat

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/pubsub"
)

// MaxIdempotencyKeyLength bounds postMessage's idempotency key, in bytes.
const MaxIdempotencyKeyLength = 128

// CreateRoom creates a public room named name. Public names are unique
// ignoring case: the room's directory entry is keyed by the name, and the
// log stores one entry per key, so of two replicas creating the same name
// at once exactly one wins.
func (s *Service) CreateRoom(ctx context.Context, actor Actor, name string) (Room, error) {
	return s.createRoom(ctx, actor, name, false)
}

// CreatePrivateRoom creates a private room named name, whose only member
// is actor. A private room's directory entry is keyed by its ID: its name
// need not be unique, never blocks another room's, and so creating a room
// reveals nothing of the private rooms there are.
func (s *Service) CreatePrivateRoom(ctx context.Context, actor Actor, name string) (Room, error) {
	return s.createRoom(ctx, actor, name, true)
}

func (s *Service) createRoom(ctx context.Context, actor Actor, name string, private bool) (Room, error) {
	if err := checkActor(actor); err != nil {
		return Room{}, err
	}
	// One name has one spelling: "Cafe\u0301" is stored as "Café", so that
	// the two canonically equivalent spellings are one name, not two rooms
	// that look alike. Its length is counted as sent or as stored, the
	// rest checked as stored (checkProposedName).
	name, bad := checkProposedName(name)
	if bad != nil {
		return Room{}, bad
	}
	taken := func() error { return errorf(CodeConflict, "a room named %q already exists", name) }
	if !private && s.roomNameTaken(name) {
		return Room{}, taken()
	}
	e := Event{Type: RoomCreated, Actor: actor, RoomID: newRoomID(), Name: name, Private: private}
	data, err := e.Encode()
	if err != nil {
		return Room{}, err
	}
	// Nothing would apply the room: refused rather than stored (see
	// lifecycle.refuseCommand).
	if refused := s.stage.refuseCommand(); refused != nil {
		return Room{}, refused
	}
	client := ctx
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	res, err := s.log.AddToDirectory(ctx, e.directoryKey(), data)
	switch {
	case errors.Is(err, pubsub.ErrKeyExists):
		return Room{}, taken()
	case err != nil:
		s.opts.Logger.Log(ctx, appendFailureLevel(client), "adding a room to the directory failed", "room", e.RoomID, "err", err)
		return Room{}, appendFailed(err, "room's creation")
	}
	if err := s.waitDirectory(ctx, res.Seq); err != nil {
		// Not UNAVAILABLE, which invites a retry: a private room would be
		// created twice.
		return Room{}, errorf(CodeOutcomeUnknown,
			"room %s was created (position %d) but this replica has not applied it yet; read it back shortly rather than create it again", e.RoomID, res.Seq)
	}
	room, ok := s.RoomInfo(e.RoomID)
	if !ok {
		return Room{}, errorf(CodeInternal, "room %s was stored but the directory refused it", e.RoomID)
	}
	return room, nil
}

// postDedupID is the log's de-duplication ID of a post with an
// idempotency key: one per (author, room, key). Length-prefixed so that no
// two triples collide; an author ID with control characters, which the
// header carrying the ID would not keep ("a\nb" goes as "a b"), is hashed,
// under a prefix of its own.
func postDedupID(actorID, roomID, key string) string {
	if strings.ContainsFunc(actorID, unicode.IsControl) {
		return fmt.Sprintf("post-sha256:%x:%s:%s", sha256.Sum256([]byte(actorID)), roomID, key)
	}
	return fmt.Sprintf("post:%d:%s:%s:%s", len(actorID), actorID, roomID, key)
}

func (s *Service) roomNameTaken(name string) bool {
	s.dirMu.RLock()
	defer s.dirMu.RUnlock()
	_, taken := s.dir.names[nameTakenKey(name)]
	return taken
}

// AddMember makes userID a member of a private room. Any member may add
// anyone who is not a member yet; the new member's subscriptions and
// resumes cover the room's events from this one on.
func (s *Service) AddMember(ctx context.Context, actor Actor, roomID, userID string) (Room, error) {
	return s.changeMember(ctx, Event{Type: MemberAdded, Actor: actor, RoomID: roomID, UserID: userID})
}

// RemoveMember ends userID's membership of a private room. Any member may
// remove any member, themselves included, except the last one. The
// removed member's subscriptions of the room end with FORBIDDEN, on every
// replica, once it applies the removal.
func (s *Service) RemoveMember(ctx context.Context, actor Actor, roomID, userID string) (Room, error) {
	return s.changeMember(ctx, Event{Type: MemberRemoved, Actor: actor, RoomID: roomID, UserID: userID})
}

func (s *Service) changeMember(ctx context.Context, e Event) (Room, error) {
	if err := checkActor(e.Actor); err != nil {
		return Room{}, err
	}
	if !validID(e.RoomID) {
		return Room{}, errorf(CodeNotFound, "room %q does not exist", e.RoomID)
	}
	if err := checkMemberID(e.UserID); err != nil {
		return Room{}, err
	}
	if e.Type == MemberAdded {
		// Only an addition: a member added before the rule stays removable.
		if err := checkProposedMemberID(e.UserID); err != nil {
			return Room{}, err
		}
	}
	var (
		room Room
		seq  uint64
	)
	err := s.propose(ctx, e, "", func(rs *roomState, stored uint64, _ bool) *Error {
		room, seq = rs.room, stored
		return nil
	})
	if err != nil {
		return Room{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	if err := s.members.waitFolded(ctx, e.RoomID, seq); err != nil {
		// Stored and applied to the room; only rooms may list it late.
		s.opts.Logger.Warn("the member index has not caught up with a membership change", "room", e.RoomID, "seq", seq, "err", err)
	}
	return room, nil
}

// PostMessage posts text to a room. A non-empty idempotencyKey makes a
// retried post (same author, room and key, within the log's de-duplication
// window) return the first post instead of storing another; a post of
// another text with the key of an unedited one is a CONFLICT, and so is
// any post with the key of one deleted since, whose text is gone.
func (s *Service) PostMessage(ctx context.Context, actor Actor, roomID, text, idempotencyKey string) (Message, error) {
	if err := checkActor(actor); err != nil {
		return Message{}, err
	}
	if !validID(roomID) {
		return Message{}, errorf(CodeNotFound, "room %q does not exist", roomID)
	}
	if err := s.checkProposedText(text); err != nil {
		return Message{}, err
	}
	dedupID := ""
	if idempotencyKey != "" {
		if err := checkIdempotencyKey(idempotencyKey); err != nil {
			return Message{}, err
		}
		dedupID = postDedupID(actor.ID, roomID, idempotencyKey)
	}
	e := Event{Type: MessagePosted, Actor: actor, RoomID: roomID, MessageID: newMessageID(roomID), Text: text}
	var msg Message
	err := s.propose(ctx, e, dedupID, func(rs *roomState, seq uint64, duplicate bool) *Error {
		// A duplicate reports the first post's sequence.
		m, ok := rs.postedAt(seq)
		if !ok {
			return errorf(CodeNotFound, "message stored at %d is no longer retained", seq)
		}
		switch {
		case !duplicate:
			// This post, stored: answered as it is now, though its
			// author may have edited or deleted it already through
			// another replica that applied it before this one heard
			// back from the log.
		case m.Version == 1 && m.Text != text:
			// The key's first post, unedited, holds another text: not a
			// retry of it, and the new text would be lost without a word.
			return errorf(CodeConflict, "idempotencyKey %q was used a moment ago for a post of another text; use a new key for a new post", idempotencyKey)
		case m.Deleted:
			// Its text is gone, so a new text cannot be told from a retry.
			return errorf(CodeConflict, "idempotencyKey %q was used a moment ago for a post deleted since; use a new key for a new post", idempotencyKey)
		}
		msg = m
		return nil
	})
	return msg, err
}

// EditMessage replaces a message's text; version must be the message's
// current version (optimistic concurrency).
func (s *Service) EditMessage(ctx context.Context, actor Actor, messageID string, version int, text string) (Message, error) {
	if err := checkVersion(version); err != nil {
		return Message{}, err
	}
	if err := s.checkProposedText(text); err != nil {
		return Message{}, err
	}
	return s.changeMessage(ctx, Event{Type: MessageEdited, Actor: actor, MessageID: messageID, Version: version, Text: text})
}

// checkProposedText applies the hard text rules, the proposer's
// (checkProposedTextRules) and this replica's stricter length limit
// (Options.MaxTextLength), if any.
func (s *Service) checkProposedText(text string) *Error {
	if err := checkText(text); err != nil {
		return err
	}
	if err := checkProposedTextRules(text); err != nil {
		return err
	}
	if limit := s.opts.MaxTextLength; limit > 0 && limit < MaxTextLength && utf8.RuneCountInString(text) > limit {
		return errorf(CodeBadUserInput, "text is longer than %d characters", limit)
	}
	return nil
}

// DeleteMessage deletes a message; version must be its current version.
func (s *Service) DeleteMessage(ctx context.Context, actor Actor, messageID string, version int) (Message, error) {
	if err := checkVersion(version); err != nil {
		return Message{}, err
	}
	return s.changeMessage(ctx, Event{Type: MessageDeleted, Actor: actor, MessageID: messageID, Version: version})
}

// React toggles the actor's reaction with emoji on a message.
func (s *Service) React(ctx context.Context, actor Actor, messageID, emoji string) (Message, error) {
	if err := checkProposedEmoji(emoji); err != nil {
		return Message{}, err
	}
	return s.changeMessage(ctx, Event{Type: ReactionToggled, Actor: actor, MessageID: messageID, Emoji: emoji})
}

func (s *Service) changeMessage(ctx context.Context, e Event) (Message, error) {
	if err := checkActor(e.Actor); err != nil {
		return Message{}, err
	}
	roomID, ok := roomOfMessage(e.MessageID)
	if !ok {
		return Message{}, errorf(CodeNotFound, "message %q does not exist", e.MessageID)
	}
	e.RoomID = roomID
	// Before the lookup, which waits for a directory that only Run keeps.
	if refused := s.stage.refuseCommand(); refused != nil {
		return Message{}, refused
	}
	if _, exists, err := s.LookupRoom(ctx, roomID); err != nil {
		return Message{}, err
	} else if !exists {
		return Message{}, errorf(CodeNotFound, "message %q does not exist", e.MessageID)
	}
	var msg Message
	err := s.propose(ctx, e, "", func(rs *roomState, _ uint64, _ bool) *Error {
		m, ok := rs.message(e.MessageID)
		if !ok {
			return errorf(CodeNotFound, "message %s is no longer retained", e.MessageID)
		}
		msg = m
		return nil
	})
	return msg, err
}

// appendFailureLevel is the level a failed append is logged at: a warning,
// unless the command's client left (client, its caller's context, ended)
// while it waited, which is no fault of the log's and which any client can
// repeat. The apply timeout passing is the log's: a warning.
func appendFailureLevel(client context.Context) slog.Level {
	if client.Err() != nil {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// propose judges e against the room as this replica holds it and appends it
// with the room's last sequence as the expected one. If the room moved on
// meanwhile (another replica's event was stored first), the log refuses
// it: the replica catches up and judges again, so each room's events are
// judged one after the other, in the room's order, with one outcome on
// every replica. Once the event is stored, propose waits until this replica
// has applied it (read-your-writes) and calls result with the room and the
// event's sequence (the first post's, for a de-duplicated retry). Unless
// the Service runs, it appends nothing: it refuses with UNAVAILABLE at once,
// and again right before each append, as the room's load or a catch-up may
// have outlasted Run.
func (s *Service) propose(ctx context.Context, e Event, dedupID string, result func(rs *roomState, seq uint64, duplicate bool) *Error) error {
	if refused := s.stage.refuseCommand(); refused != nil {
		return refused
	}
	client := ctx
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	h, err := s.acquire(ctx, e.RoomID, waitBrief)
	if err != nil {
		return err
	}
	defer s.release(h)
	h.propose.Lock()
	defer h.propose.Unlock()
	rechecked := false
	for {
		h.mu.Lock()
		judged := h.st.judgeProposal(e)
		e.Prev = h.st.last
		h.mu.Unlock()
		if judged != nil {
			if !rechecked {
				rechecked = true
				if s.reachLog(ctx, h, e.Prev) {
					continue // judge again, up to date
				}
				// Unconfirmed, and once the stop has begun nothing applies
				// what the log holds: the refusal may rest on a copy that
				// stays behind, a message or a member it has not seen.
				if refused := s.stage.refuseCommand(); refused != nil {
					return refused
				}
			}
			return judged
		}
		data, err := e.Encode()
		if err != nil {
			return err
		}
		if refused := s.stage.refuseCommand(); refused != nil {
			return refused
		}
		res, err := s.log.AppendKeyed(ctx, e.RoomID, e.rest(), data, pubsub.AppendOptions{DedupID: dedupID, ExpectLast: e.Prev})
		var conflict *pubsub.ConflictError
		if errors.As(err, &conflict) {
			if err := s.catchUp(ctx, h, conflict.Last, e.Prev); err != nil {
				return err
			}
			continue // judge again
		}
		if err != nil {
			s.opts.Logger.Log(ctx, appendFailureLevel(client), "appending an event failed", "type", e.Type, "room", e.RoomID, "err", err)
			return appendFailed(err, string(e.Type)+" event")
		}
		if s.waitApplied(ctx, h, res.Seq) != nil {
			// Not UNAVAILABLE, which says nothing was stored and invites a
			// retry: a post would be posted twice, a reaction taken back.
			return errorf(CodeOutcomeUnknown,
				"the %s event was stored (sequence %d) but this replica has not applied it yet; read it back before repeating it",
				e.Type, res.Seq)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if bad := result(h.st, res.Seq, res.Duplicate); bad != nil {
			return bad
		}
		return nil
	}
}

// catchUp waits after a conflict until the held room has applied what the
// log stored before the refused event: up to last, when the log said, or
// at least something after prev. When the log only said that another
// event of the room was being stored (a NATS cluster says so while one is
// in flight), that event may yet fail, so the wait is short.
func (s *Service) catchUp(ctx context.Context, h *heldRoom, last, prev uint64) error {
	if last != 0 && last <= prev {
		return s.healAhead(ctx, h, last, prev)
	}
	if last == 0 {
		short, cancel := context.WithTimeout(ctx, inFlightWait)
		defer cancel()
		_ = s.waitApplied(short, h, prev+1)
		if ctx.Err() != nil {
			return errorf(CodeUnavailable, "room %s is busy; retry shortly", h.id)
		}
		return nil
	}
	if err := s.waitApplied(ctx, h, last); err != nil {
		return errorf(CodeUnavailable, "room %s is busy; retry shortly", h.id)
	}
	return nil
}

// healAhead answers a conflict that says the log's last entry of the room
// (last) is older than the room's (prev): the room applied a live entry the
// log does not hold (anyone who may publish on the live subjects can forge
// one), or entries were removed from the log behind Herald's back. The
// log's order is authoritative: the re-read finds that the log does not
// hold prev and reloads the room from it, and the proposal is judged again.
func (s *Service) healAhead(ctx context.Context, h *heldRoom, last, prev uint64) error {
	if err := s.resyncRoom(ctx, h.id); err != nil {
		return errorf(CodeUnavailable, "room %s is being re-read from the event log; retry shortly", h.id)
	}
	h.mu.Lock()
	stuck := h.st.last == prev
	h.mu.Unlock()
	if stuck {
		// The log holds the room's last entry after all, yet said its last
		// was older: judging again cannot help.
		s.opts.Logger.Error("the event log is behind this replica's copy of a room", "room", h.id, "log_last", last, "held_last", prev)
		return errorf(CodeUnavailable, "room %s cannot take changes now: the event log is behind this replica", h.id)
	}
	return nil
}

// inFlightWait bounds the wait for another replica's event in flight.
const inFlightWait = 50 * time.Millisecond
