// Package urlcred keeps the credentials a URL may carry
// (nats://token@host, https://user:password@host) out of what Herald says
// about it when it is wrong.
package urlcred

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// UserPart is what comes between raw's scheme and its last "@", as
// written, and whether raw has one. It is read up to the last "@" of
// everything after the scheme, not to the first "/", "?" or "#" as
// url.Parse reads it, so that it spans a password or token holding one
// of those unescaped, which url.Parse cuts short.
func UserPart(raw string) (userinfo string, ok bool) {
	rest := raw
	if _, after, found := strings.Cut(raw, "://"); found {
		rest = after
	}
	at := strings.LastIndex(rest, "@")
	if at <= 0 {
		return "", false
	}
	return rest[:at], true
}

// quoted is a Go-quoted string (strconv.Quote, %q) in a message.
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// ParseProblem is what err, url.Parse's error for raw, says is wrong,
// without the URL it quotes. When raw has a user part, the pieces of raw
// the problem quotes are left out as well: a password holding an
// unescaped "#", "?" or "/" ends the host where it stands, and its first
// characters come back quoted as an "invalid port".
func ParseProblem(raw string, err error) string {
	problem := err.Error()
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		problem = ue.Err.Error()
	}
	if _, ok := UserPart(raw); ok {
		problem = quoted.ReplaceAllString(problem, "")
	}
	return problem
}
