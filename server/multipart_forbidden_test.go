package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// openMultipartAs opens a multipart subscription of room as user.
func openMultipartAs(t *testing.T, r *replica, user, room, after string) *mpClient {
	t.Helper()
	vars := map[string]any{"r": room}
	if after != "" {
		vars["after"] = after
	}
	c, resp, body := r.openMultipart(mpRequest{query: privPosted, vars: vars, header: http.Header{auth.DevHeader: {user}}})
	if c == nil {
		t.Fatalf("multipart: %d %s", resp.StatusCode, body)
	}
	return c
}

// recipeRetries is the README's RetryLink retryIf (and
// e2e/test/lib/resume.js's shouldResubscribe) applied to the last part of a
// multipart stream, as Apollo Client 4 reports it: a part with a null
// payload and top-level errors is a CombinedProtocolErrors, which the
// recipe retries unless one of its errors is UNAUTHENTICATED; a result's
// own errors are a CombinedGraphQLErrors, which it does not retry.
func recipeRetries(p mpPart) bool {
	if string(p.payload) == "null" && len(p.errors) > 0 {
		for _, e := range p.errors {
			if ext, _ := e["extensions"].(map[string]any); ext["code"] == "UNAUTHENTICATED" {
				return false
			}
		}
		return true
	}
	return false
}

// TestForbiddenEndsAMultipartStreamAsAResult: a member removed from a
// private room gets FORBIDDEN as the subscription's result, a payload of
// errors that Apollo Client reports as CombinedGraphQLErrors, as over SSE.
// As a transport error ({"payload":null,"errors":[...]}, a
// CombinedProtocolErrors) it made the README's resume recipe, which
// retries those, resubscribe the removed member forever, each attempt
// refused the same way.
func TestForbiddenEndsAMultipartStreamAsAResult(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("war room", "bob", "carl")
	carl := privTransports[0].open(r, "carl", map[string]any{"r": room})
	_ = carl
	bob := openMultipartAs(t, r, "bob", room, "")
	waitFor(t, "both subscriptions", func() bool { return r.members() == 2 })
	r.post(room, "ann", "before")
	_, cursor := bob.next().posted(t)

	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	last := bob.next()
	bob.expectEnd(5 * time.Second)
	if len(last.errors) > 0 || string(last.payload) == "null" || !strings.Contains(string(last.payload), `"code":"FORBIDDEN"`) {
		t.Fatalf("the removed member's stream ended with %s, want a payload of errors coded FORBIDDEN", last.body)
	}
	attempts := 0
	for recipeRetries(last) && attempts < 3 {
		attempts++
		c := openMultipartAs(t, r, "bob", room, cursor) // what RetryLink sends again, with cursorLink's after
		last = c.next()
		c.expectEnd(5 * time.Second)
	}
	if attempts > 0 {
		t.Fatalf("the README's recipe resubscribed a removed member %d times (and would go on forever): each stream ends with %s",
			attempts, last.body)
	}
}
