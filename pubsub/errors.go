package pubsub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Sentinel errors wrapped by the errors this package returns, for use with
// errors.Is.
var (
	// ErrUnreachable means the NATS server could not be reached: the first
	// connection failed, or the connection is currently down. A write that
	// fails with it was not sent; one that fails otherwise (its
	// acknowledgement did not come in time, the connection dropped while
	// it waited) may have been stored.
	ErrUnreachable = errors.New("NATS unreachable")

	// ErrRefused means the event log answered a write by refusing it
	// outright, storing nothing: its store is full or at a limit set on
	// the stream or the account (JetStream "insufficient resources",
	// "maximum bytes exceeded", ...), the message is larger than it takes,
	// or the stream is sealed. Unlike a write whose acknowledgement never
	// came, it needs no read-back: repeating it stores it once the cause
	// is gone. The error also wraps the server's *jetstream.APIError, or
	// nats.ErrMaxPayload when the client refused to send a message over
	// the server's max_payload.
	ErrRefused = errors.New("refused by the event log, nothing stored")

	// ErrJetStreamDisabled means the NATS server (or the account used) does
	// not have JetStream enabled.
	ErrJetStreamDisabled = errors.New("JetStream not enabled")

	// ErrServerTooOld means the NATS server is older than 2.11 (JetStream
	// API level 0), whose writes cannot be checked against a key's last
	// sequence over all its subjects.
	ErrServerTooOld = errors.New("NATS server too old")

	// ErrStreamConflict means a stream of the layout exists with settings
	// this package cannot use or cannot change, or its subjects are already
	// captured by another stream.
	ErrStreamConflict = errors.New("stream configuration conflict")

	// ErrLayoutConflict means the existing log was created with another
	// layout: another partition count, or streams of the layout's names that
	// do not record one.
	ErrLayoutConflict = errors.New("event log layout conflict")

	// ErrPresenceClosed means a Presence's Close was called before the
	// watch was asked for.
	ErrPresenceClosed = errors.New("presence closed")

	// ErrKeyExists means AddToDirectory found the key already has an entry.
	ErrKeyExists = errors.New("key already in the directory")

	// ErrConflict means AppendKeyed's ExpectLast was not the key's last
	// sequence: the key moved on. The error is a *ConflictError.
	ErrConflict = errors.New("key moved on")

	// ErrDataDirInUse means another embedded server, of this process or
	// another, holds Options.DataDir.
	ErrDataDirInUse = errors.New("in use by another embedded NATS server (another Herald running on it?)")
	// ErrDataDirNotWritable means Options.DataDir cannot be created or
	// written to.
	ErrDataDirNotWritable = errors.New("not writable")
)

// ConflictError is AppendKeyed's error when the key's last sequence is not
// the expected one. It wraps ErrConflict.
type ConflictError struct {
	Key      string
	Expected uint64 // AppendOptions.ExpectLast
	// Last is the key's last sequence as the server reported it; 0 when the
	// server did not say (a clustered stream refusing an expected-write while
	// another one on the same key is in flight), or when the key has no entries.
	Last uint64

	lastKnown bool // the server reported Last
}

func (e *ConflictError) Error() string {
	if !e.lastKnown {
		return fmt.Sprintf("append to key %q: conflict: expected its last sequence to be %d, but another write to the key was in flight", e.Key, e.Expected)
	}
	return fmt.Sprintf("append to key %q: conflict: expected its last sequence to be %d, but it is %d", e.Key, e.Expected, e.Last)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// opError is an error with a hand-written single-line message that still
// unwraps to a sentinel (kind) and to the underlying cause.
type opError struct {
	msg   string
	kind  error
	cause error
}

func (e *opError) Error() string { return e.msg }

func (e *opError) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// newError returns an error whose text is the formatted message, wrapping
// kind (may be nil) and cause (may be nil).
func newError(kind, cause error, format string, args ...any) error {
	return &opError{msg: fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// redactURLs joins server URLs for messages, hiding any password or token.
func redactURLs(urls []string) string {
	out := make([]string, len(urls))
	for i, s := range urls {
		out[i] = s
		u, err := url.Parse(s)
		switch {
		case err != nil:
			// Not a URL url.Parse reads (a port mistyped): whatever
			// stands between "://" and the last "@" may be a secret.
			if scheme, rest, ok := strings.Cut(s, "://"); ok {
				if at := strings.LastIndex(rest, "@"); at > 0 {
					out[i] = scheme + "://xxxxx" + rest[at:]
				}
			}
		case u.User != nil:
			if _, hasPassword := u.User.Password(); !hasPassword {
				// nats://token@host: the user part is the secret.
				u.User = url.User("xxxxx")
			}
			out[i] = u.Redacted()
		}
	}
	return strings.Join(out, ",")
}

// oneLine flattens a message onto a single line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
