package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	// DevHeader is the HTTP header that names the user in development mode.
	DevHeader = "X-Herald-User"
	// DevPayloadKey is the connection_init payload key that names the user
	// in development mode.
	DevPayloadKey = "user"
	// MaxDevUserLength bounds a development user name, in characters.
	MaxDevUserLength = 64
)

// Dev is the insecure development authenticator: whoever names a user is
// that user. It must never face untrusted clients.
type Dev struct{}

var _ Authenticator = Dev{}

// FromRequest reads the user from the X-Herald-User header.
func (Dev) FromRequest(r *http.Request) (Identity, bool, error) {
	name := devName(r.Header.Get(DevHeader))
	if name == "" {
		return Identity{}, false, nil
	}
	return devIdentity(name, "header "+DevHeader)
}

// FromInitPayload reads the user from the "user" key of the payload.
func (Dev) FromInitPayload(_ context.Context, payload map[string]any) (Identity, bool, error) {
	name, isString := payload[DevPayloadKey].(string)
	name = devName(name)
	switch raw := payload[DevPayloadKey]; {
	case raw == nil || name == "" && isString:
		return Identity{}, false, nil
	case !isString:
		return Identity{}, false, fmt.Errorf("%w: connection_init payload key %q must be a string, got %T",
			ErrInvalidCredentials, DevPayloadKey, raw)
	}
	return devIdentity(name, "connection_init payload key "+DevPayloadKey)
}

// FromToken takes token as the user name, as the header and the
// connection_init payload key carry it. An empty token is anonymous.
func (Dev) FromToken(_ context.Context, token string) (Identity, bool, error) {
	name := devName(token)
	if name == "" {
		return Identity{}, false, nil
	}
	return devIdentity(name, "token")
}

// devName is a development user name as HTTP carries a header's value:
// without the spaces and tabs around it. So "alice " names alice whether
// it comes in a header (where net/http trims it), a connection_init
// payload or a token, and spaces alone name nobody.
func devName(s string) string {
	return strings.Trim(s, " \t")
}

func devIdentity(name, source string) (Identity, bool, error) {
	if err := checkUserName(name, MaxDevUserLength); err != nil {
		return Identity{}, false, fmt.Errorf("%w: %s: user name %v", ErrInvalidCredentials, source, err)
	}
	return Identity{UserID: name, Name: name}, true, nil
}

// checkUserName says why s cannot name a user (a development user or a
// token's sub): it is not UTF-8, is longer than max characters, or holds
// control characters or white space other than the space (U+0020).
func checkUserName(s string, max int) error {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	case n > max:
		return fmt.Errorf("has %d characters, at most %d allowed", n, max)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) && r != ' ' }):
		return errors.New("contains control characters or white space other than the space")
	}
	return nil
}
