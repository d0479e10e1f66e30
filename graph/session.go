package graph

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// Disconnector ends a user's sessions (WebSockets, event streams) on every
// replica. Herald's passes the request on over NATS to each replica's
// server.Server.DisconnectUser.
type Disconnector interface {
	DisconnectUser(ctx context.Context, userID string) error
}

func (r mutationResolver) RefreshSession(ctx context.Context, token string) (*model.Session, error) {
	s, ok := auth.SessionFrom(ctx)
	if !ok {
		return nil, &chat.Error{Code: chat.CodeBadUserInput,
			Message: "refreshSession replaces a WebSocket's credentials: send it over the WebSocket whose token it refreshes"}
	}
	id, err := s.Refresh(ctx, token)
	switch {
	case errors.Is(err, auth.ErrOtherUser):
		return nil, &chat.Error{Code: chat.CodeForbidden, Message: "refreshSession: " + err.Error()}
	case errors.Is(err, auth.ErrInvalidCredentials):
		return nil, &chat.Error{Code: chat.CodeUnauthenticated, Message: "refreshSession: " + err.Error()}
	case err != nil:
		return nil, &chat.Error{Code: chat.CodeUnavailable, Message: "refreshSession: the token could not be checked; retry later"}
	}
	out := &model.Session{User: &chat.Actor{ID: id.UserID, Name: id.Name}}
	if !id.ExpiresAt.IsZero() {
		at := id.ExpiresAt.UTC() // every Time Herald answers is in UTC, whatever the host's zone
		out.ExpiresAt = &at
	}
	return out, nil
}

func (r mutationResolver) DisconnectUser(ctx context.Context, userID string) (bool, error) {
	id, ok := auth.FromContext(ctx)
	switch {
	case !ok:
		return false, &chat.Error{Code: chat.CodeUnauthenticated, Message: "disconnectUser needs an administrator's token; sign in and retry"}
	case !id.Admin:
		return false, &chat.Error{Code: chat.CodeForbidden, Message: "disconnectUser is for administrators only"}
	case userID == "":
		return false, &chat.Error{Code: chat.CodeBadUserInput, Message: "disconnectUser: userId is empty"}
	case utf8.RuneCountInString(userID) > auth.MaxUserIDLength:
		// No identity has such an ID; the notice would not fit NATS either.
		return false, &chat.Error{Code: chat.CodeBadUserInput,
			Message: fmt.Sprintf("disconnectUser: userId is longer than %d characters, which no user ID is", auth.MaxUserIDLength)}
	case r.sessions == nil:
		return false, &chat.Error{Code: chat.CodeUnavailable, Message: "this server cannot disconnect users"}
	}
	if err := r.sessions.DisconnectUser(ctx, userID); err != nil {
		return false, &chat.Error{Code: chat.CodeUnavailable, Message: "disconnectUser: the replicas could not be told (" + err.Error() + "); retry"}
	}
	return true, nil
}
