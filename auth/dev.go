package auth

import (
	"context"
	"fmt"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// DevHeader is the HTTP header that names the user in development mode.
const DevHeader = "X-Herald-User"

// DevPayloadKey is the connection_init payload key that names the user in
// development mode.
const DevPayloadKey = "user"

// MaxDevUserLength bounds a development user name, in characters.
const MaxDevUserLength = 64

// Dev is the insecure development authenticator: whoever names a user is
// that user. It must never face untrusted clients.
type Dev struct{}

var _ Authenticator = Dev{}

// FromRequest reads the user from the X-Herald-User header.
func (Dev) FromRequest(r *http.Request) (Identity, bool, error) {
	name := r.Header.Get(DevHeader)
	if name == "" {
		return Identity{}, false, nil
	}
	return devIdentity(name, "header "+DevHeader)
}

// FromInitPayload reads the user from the "user" key of the payload.
func (Dev) FromInitPayload(_ context.Context, payload map[string]any) (Identity, bool, error) {
	raw, present := payload[DevPayloadKey]
	if !present || raw == nil {
		return Identity{}, false, nil
	}
	name, isString := raw.(string)
	if !isString {
		return Identity{}, false, fmt.Errorf("%w: connection_init payload key %q must be a string, got %T",
			ErrInvalidCredentials, DevPayloadKey, raw)
	}
	if name == "" {
		return Identity{}, false, nil
	}
	return devIdentity(name, "connection_init payload key "+DevPayloadKey)
}

func devIdentity(name, source string) (Identity, bool, error) {
	if err := ValidateDevUser(name); err != nil {
		return Identity{}, false, fmt.Errorf("%w: %s: %v", ErrInvalidCredentials, source, err)
	}
	return Identity{UserID: name, Name: name}, true, nil
}

// ValidateDevUser reports why name is not an acceptable development user name.
func ValidateDevUser(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("user name is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(name); n > MaxDevUserLength {
		return fmt.Errorf("user name has %d characters, at most %d allowed", n, MaxDevUserLength)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.IsSpace(r) && r != ' ' {
			return fmt.Errorf("user name contains control or line-break characters")
		}
	}
	return nil
}
