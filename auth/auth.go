// Package auth provides the identity seam shared by the transports (which
// authenticate requests and sockets) and the resolvers (which read who is
// asking), and the access seam of shared subscriptions (Gate, Restrict):
// how a resolver tells the engine which identities may receive the events
// of an execution many subscribers share. It knows nothing about GraphQL
// or the chat domain.
package auth

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Identity is who a request or socket acts as.
type Identity struct {
	// UserID is the stable identifier the domain records as actor/author.
	UserID string
	// Name is the display name.
	Name string
	// ExpiresAt is when the credentials behind this identity stop being
	// valid; the zero time means they do not expire. A socket authenticates
	// once, at connection_init, so without this a subscription would outlive
	// the token that opened it: the WebSocket transport closes the socket
	// with 4403 when ExpiresAt passes.
	ExpiresAt time.Time
	// Admin reports that the credentials grant administrative operations
	// (disconnecting a user's sessions). Only a JWT can carry it, through
	// the claim JWTOptions.AdminClaim names.
	Admin bool
}

// ErrInvalidCredentials is wrapped by every authentication failure caused by
// what the client sent (as opposed to the server being unable to check).
var ErrInvalidCredentials = errors.New("invalid credentials")

// Authenticator turns what a client presents into an Identity.
//
// Both methods return ok=false with a nil error for an anonymous client (no
// credentials at all), and an error wrapping ErrInvalidCredentials when
// credentials are present but unacceptable.
type Authenticator interface {
	// FromRequest authenticates an HTTP request.
	FromRequest(r *http.Request) (id Identity, ok bool, err error)
	// FromInitPayload authenticates a WebSocket connection_init payload.
	FromInitPayload(ctx context.Context, payload map[string]any) (id Identity, ok bool, err error)
	// FromToken authenticates a bare credential that an operation carries
	// as an argument (refreshSession's token): what the client would
	// otherwise send in a header or a connection_init payload.
	FromToken(ctx context.Context, token string) (id Identity, ok bool, err error)
}

// ErrOtherUser is returned by Session.Refresh for credentials of a user
// other than the session's: a session never changes hands.
var ErrOtherUser = errors.New("the credentials are for another user")

// Session is the long-lived connection an operation arrived on (a
// WebSocket), as the operation's resolvers see it. Transports put it in the
// operation's context; operations over plain HTTP have none.
type Session interface {
	// Refresh authenticates token and, when it is for the session's user,
	// makes it the session's credentials: the session stays open, with its
	// subscriptions, until the new credentials expire. Credentials the
	// client got wrong wrap ErrInvalidCredentials; those of another user,
	// ErrOtherUser. The session is unchanged on any error.
	Refresh(ctx context.Context, token string) (Identity, error)
}

type sessionKey struct{}

// WithSession returns a copy of ctx carrying s.
func WithSession(ctx context.Context, s Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFrom returns the session stored in ctx, if any.
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(Session)
	return s, ok
}

type identityKey struct{}

// NewContext returns a copy of ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity stored in ctx, if any.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
