// Package library is the articles example's domain: authors and their
// articles, kept as events in Herald's event log (package pubsub) and
// folded into a read model on every replica.
//
// The whole library is one key of the log, so its events form one chain
// and one position (the entry's sequence) orders them all: it is every
// subscription's cursor, and a command is stored only if the position it
// was judged at is still the key's last (pubsub's optimistic concurrency).
// A bigger domain spreads over many keys and loads them on demand, as chat
// does with its rooms; one key keeps this example short.
package library

import (
	"fmt"
	"slices"
	"sort"
	"time"
	"unicode/utf8"
)

// Author is someone who writes articles.
type Author struct {
	ID        string
	FirstName string
	LastName  string
	CreatedAt time.Time
}

// Article is a text by an author. Version is 1 when it is added and one
// more with every text change.
type Article struct {
	ID        string
	AuthorID  string
	Title     string
	Text      string
	Version   int
	CreatedAt time.Time
	UpdatedAt time.Time
}

// EventType names an event. It is also the token under the library's key
// that the log stores the event at.
type EventType string

// The events of the library.
const (
	AuthorCreated      EventType = "author_created"
	ArticleAdded       EventType = "article_added"
	ArticleTextChanged EventType = "article_text_changed"
)

// event is what the log stores, as JSON.
type event struct {
	Type EventType `json:"type"`
	// Prev is the library's position when the event was judged. The log
	// stores the event only if that is still the key's last sequence, so a
	// live entry whose Prev is not the position applied shows a gap.
	Prev      uint64 `json:"prev"`
	ID        string `json:"id"` // the author's or the article's
	AuthorID  string `json:"authorId,omitempty"`
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Title     string `json:"title,omitempty"`
	Text      string `json:"text,omitempty"`
	Version   int    `json:"version,omitempty"` // the article's version after the event
}

// Change is an applied event as subscribers see it.
type Change struct {
	Seq     uint64 // the event's position in the log: its cursor
	At      time.Time
	Type    EventType
	Author  *Author  // AuthorCreated
	Article *Article // article events: the article as the event left it
}

// Bounds on what an event may carry, in characters. They are constants
// because every replica judges every event by them.
const (
	maxName  = 100
	maxTitle = 200
	maxText  = 20000
)

// state is the library folded from the log up to position last.
type state struct {
	last     uint64
	authors  map[string]Author
	articles map[string]Article
	history  []Change // every change in log order: what a resume replays
}

func newState() state {
	return state{authors: map[string]Author{}, articles: map[string]Article{}}
}

// judge says why e cannot follow the library as it is, or nil. Proposing
// and applying judge alike, so every replica skips the same entries.
func (s *state) judge(e *event) error {
	switch e.Type {
	case AuthorCreated:
		if _, dup := s.authors[e.ID]; dup {
			return errorf(CodeConflict, "author %q exists", e.ID)
		}
		return firstError(checkLength("firstName", e.FirstName, maxName), checkLength("lastName", e.LastName, maxName))
	case ArticleAdded:
		if _, ok := s.authors[e.AuthorID]; !ok {
			return errorf(CodeNotFound, "author %q does not exist", e.AuthorID)
		}
		if _, dup := s.articles[e.ID]; dup || e.Version != 1 {
			return errorf(CodeConflict, "article %q exists", e.ID)
		}
		return firstError(checkLength("title", e.Title, maxTitle), checkLength("text", e.Text, maxText))
	case ArticleTextChanged:
		a, ok := s.articles[e.ID]
		if !ok {
			return errorf(CodeNotFound, "article %q does not exist", e.ID)
		}
		if e.Version != a.Version+1 {
			return errorf(CodeConflict, "article %q is at version %d", e.ID, a.Version)
		}
		return checkLength("text", e.Text, maxText)
	}
	return errorf(CodeInternal, "unknown event type %q", e.Type)
}

func checkLength(field, value string, limit int) error {
	if n := utf8.RuneCountInString(value); n == 0 || n > limit || !utf8.ValidString(value) {
		return errorf(CodeBadUserInput, "%s must be valid UTF-8 of 1 to %d characters", field, limit)
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// apply folds e, which judge accepted, stored at seq and at.
func (s *state) apply(seq uint64, at time.Time, e event) Change {
	c := Change{Seq: seq, At: at, Type: e.Type}
	switch e.Type {
	case AuthorCreated:
		a := Author{ID: e.ID, FirstName: e.FirstName, LastName: e.LastName, CreatedAt: at}
		s.authors[a.ID], c.Author = a, &a
	default:
		a := s.articles[e.ID]
		if e.Type == ArticleAdded {
			a = Article{ID: e.ID, AuthorID: e.AuthorID, Title: e.Title, CreatedAt: at}
		}
		a.Text, a.Version, a.UpdatedAt = e.Text, e.Version, at
		s.articles[a.ID], c.Article = a, &a
	}
	s.history = append(s.history, c)
	return c
}

// since returns the index in history of the first change after position.
func (s *state) since(position uint64) int {
	return sort.Search(len(s.history), func(i int) bool { return s.history[i].Seq > position })
}

// changeAt returns the change stored at seq, if it was applied.
func (s *state) changeAt(seq uint64) (Change, error) {
	if i := s.since(seq - 1); i < len(s.history) && s.history[i].Seq == seq {
		return s.history[i], nil
	}
	return Change{}, errorf(CodeInternal, "the event stored at position %d was not applied", seq)
}

// changesAfter returns a copy of every change after position.
func (s *state) changesAfter(position uint64) []Change {
	return slices.Clone(s.history[s.since(position):])
}

// Code classifies an Error; clients see it as extensions.code.
type Code string

// The codes the library's errors carry.
const (
	CodeBadUserInput  Code = "BAD_USER_INPUT"
	CodeNotFound      Code = "NOT_FOUND"
	CodeConflict      Code = "CONFLICT"
	CodeUnavailable   Code = "UNAVAILABLE"
	CodeCursorExpired Code = "CURSOR_EXPIRED"
	CodeInternal      Code = "INTERNAL"
)

// Error is a refusal explained to the client.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Extensions gives the GraphQL error its extensions.code: Herald's server
// copies extensions from any error that has this method.
func (e *Error) Extensions() map[string]any { return map[string]any{"code": string(e.Code)} }

func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
