package chat

import (
	"context"
	"fmt"
	"unicode/utf8"
)

// MaxIdempotencyKeyLength bounds postMessage's idempotency key, in bytes.
const MaxIdempotencyKeyLength = 128

// The commands below check what they can locally before appending, so that
// an obviously bad request costs no log entry; the projection re-checks
// everything and is the judge, because the local read model may lag.

// CreateRoom creates a room named name.
func (s *Service) CreateRoom(ctx context.Context, actor Actor, name string) (Room, error) {
	if err := checkActor(actor); err != nil {
		return Room{}, err
	}
	if err := checkRoomName(name); err != nil {
		return Room{}, err
	}
	if s.roomNameTaken(name) {
		return Room{}, errorf(CodeConflict, "a room named %q already exists", name)
	}
	out, err := s.propose(ctx, Event{Type: RoomCreated, Actor: actor, RoomID: newRoomID(), Name: name}, "")
	if err != nil {
		return Room{}, err
	}
	room, ok := s.Room(out.RoomID)
	if !ok {
		return Room{}, errorf(CodeInternal, "room %s vanished after it was created", out.RoomID)
	}
	return room, nil
}

func (s *Service) roomNameTaken(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, taken := s.proj.names[roomNameKey(name)]
	return taken
}

// PostMessage posts text to a room. A non-empty idempotencyKey makes a
// retried post (same author, room and key, within the log's de-duplication
// window) return the first post instead of storing another.
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
		if len(idempotencyKey) > MaxIdempotencyKeyLength || !utf8.ValidString(idempotencyKey) {
			return Message{}, errorf(CodeBadUserInput, "idempotencyKey must be valid UTF-8 of at most %d bytes", MaxIdempotencyKeyLength)
		}
		// Length-prefixed so that no two (author, room, key) triples collide.
		dedupID = fmt.Sprintf("post:%d:%s:%s:%s", len(actor.ID), actor.ID, roomID, idempotencyKey)
	}
	e := Event{Type: MessagePosted, Actor: actor, RoomID: roomID, MessageID: newMessageID(roomID), Text: text}
	out, err := s.propose(ctx, e, dedupID)
	if err != nil {
		return Message{}, err
	}
	return s.changedMessage(out)
}

// EditMessage replaces a message's text; version must be the message's
// current version (optimistic concurrency).
func (s *Service) EditMessage(ctx context.Context, actor Actor, messageID string, version int, text string) (Message, error) {
	if err := s.checkProposedText(text); err != nil {
		return Message{}, err
	}
	return s.changeMessage(ctx, Event{Type: MessageEdited, Actor: actor, MessageID: messageID, Version: version, Text: text})
}

// checkProposedText applies the hard text rules and this replica's
// stricter length limit (Options.MaxTextLength), if any.
func (s *Service) checkProposedText(text string) *Error {
	if err := checkText(text); err != nil {
		return err
	}
	if limit := s.opts.MaxTextLength; limit > 0 && limit < MaxTextLength && utf8.RuneCountInString(text) > limit {
		return errorf(CodeBadUserInput, "text is longer than %d characters", limit)
	}
	return nil
}

// DeleteMessage deletes a message; version must be its current version.
func (s *Service) DeleteMessage(ctx context.Context, actor Actor, messageID string, version int) (Message, error) {
	return s.changeMessage(ctx, Event{Type: MessageDeleted, Actor: actor, MessageID: messageID, Version: version})
}

// React toggles the actor's reaction with emoji on a message.
func (s *Service) React(ctx context.Context, actor Actor, messageID, emoji string) (Message, error) {
	if err := checkEmoji(emoji); err != nil {
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
	out, err := s.propose(ctx, e, "")
	if err != nil {
		return Message{}, err
	}
	return s.changedMessage(out)
}

func (s *Service) changedMessage(out Outcome) (Message, error) {
	m, ok := s.Message(out.MessageID)
	if !ok {
		// Accepted, then evicted by the room's history limit before we looked.
		return Message{}, errorf(CodeNotFound, "message %s is no longer retained", out.MessageID)
	}
	return m, nil
}

// Room returns a room by ID.
func (s *Service) Room(id string) (Room, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proj.Room(id)
}

// Message returns a retained message by ID.
func (s *Service) Message(id string) (Message, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proj.Message(id)
}

// Rooms returns a page of rooms in creation order.
func (s *Service) Rooms(w Window) Page[Room] {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proj.Rooms(w)
}

// Messages returns a page of a room's retained messages in posting order;
// ok is false when the room does not exist.
func (s *Service) Messages(roomID string, w Window) (Page[Message], bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proj.Messages(roomID, w)
}
