package chat

import (
	"errors"
	"fmt"

	"github.com/heraldhq/herald/pubsub"
)

// Code classifies an Error; it is what clients see as extensions.code.
type Code string

// The error codes the domain produces.
const (
	CodeBadUserInput    Code = "BAD_USER_INPUT"
	CodeNotFound        Code = "NOT_FOUND"
	CodeConflict        Code = "CONFLICT"
	CodeForbidden       Code = "FORBIDDEN"
	CodeUnauthenticated Code = "UNAUTHENTICATED"
	CodeUnavailable     Code = "UNAVAILABLE"
	// CodeOutcomeUnknown: the command's event was sent to the log, which
	// did not confirm it, or stored it while this replica has not applied
	// it yet; it may have been stored. Read back before
	// repeating the command (a repeated react would take the reaction
	// back, a repeated createRoom make a second private room).
	CodeOutcomeUnknown Code = "OUTCOME_UNKNOWN"
	// CodeCursorExpired: the cursor is from an earlier incarnation of the
	// log or older than retention; the client must refetch.
	CodeCursorExpired Code = "CURSOR_EXPIRED"
	CodeInternal      Code = "INTERNAL"
)

// Error is a rejection the domain explains to the client. Rejections decided
// by judging an event against a room's state (roomState.judge) are
// deterministic: every replica produces the same one.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

// Extensions gives the GraphQL error its extensions.code; Herald's server
// error presenter copies it from any error that has this method.
func (e *Error) Extensions() map[string]any {
	return map[string]any{"code": string(e.Code)}
}

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// appendFailed is the error of a command whose event the log did not
// confirm: UNAVAILABLE when it was never sent, or the log refused it
// outright (retry), OUTCOME_UNKNOWN when it was sent and may have been
// stored (read back first).
func appendFailed(err error, what string) *Error {
	switch {
	case errors.Is(err, pubsub.ErrUnreachable):
		return errorf(CodeUnavailable, "the event log is unavailable; retry later")
	case errors.Is(err, pubsub.ErrRefused):
		// Its store full or at a limit, mostly: why is in the server's
		// log (the command's caller logs err), not the client's business.
		return errorf(CodeUnavailable, "the event log refused the %s (out of storage, or at a limit set on it): nothing was stored; retry later", what)
	}
	return errorf(CodeOutcomeUnknown,
		"the event log did not confirm the %s: it may or may not have been stored; read back before repeating the command", what)
}
