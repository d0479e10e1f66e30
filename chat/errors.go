package chat

import "fmt"

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
