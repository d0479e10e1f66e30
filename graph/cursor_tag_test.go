package graph

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestCursorMalformedTagIsInvalid: a tampered cursor whose tag is
// not one Herald could have written (upper case, one character too long,
// other punctuation) is an invalid cursor, and says so: not a cursor "of
// another room", which would send the client looking for the right list
// when the cursor itself is corrupt.
func TestCursorMalformedTagIsInvalid(t *testing.T) {
	r := &Resolver{epoch: 7}
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	scope := roomScope("room")
	for name, tag := range map[string]string{
		"upper-case tag":            strings.ToUpper(scope.tag),
		"upper-case letters only":   "ROOMS",
		"tag one over the limit":    strings.Repeat("a", maxTagLength+1),
		"tag with a bracket":        "rooms[",
		"tag with a brace":          "rooms{",
		"tag with a space":          "ro ms",
		"tag with a non-ASCII byte": "room\xe9",
	} {
		t.Run(name, func(t *testing.T) {
			c := raw("h2:7:5:" + tag)
			_, err := r.decodeCursor("after", scope, &c)
			chatErr, ok := errors.AsType[*chat.Error](err)
			if !ok || chatErr.Code != chat.CodeBadUserInput || chatErr.Message != "after: invalid cursor: bad tag" {
				t.Fatalf("decode(h2:7:5:%s) = %v; want BAD_USER_INPUT %q", tag, err, "after: invalid cursor: bad tag")
			}
		})
	}
	// The longest valid tag is still a tag (and so a cursor of another list).
	c := raw("h2:7:5:" + strings.Repeat("a", maxTagLength))
	if _, err := r.decodeCursor("after", scope, &c); err == nil || !strings.Contains(err.Error(), "the cursor belongs to another room") {
		t.Fatalf("a %d-character tag: %v; want it read as another room's", maxTagLength, err)
	}
}
