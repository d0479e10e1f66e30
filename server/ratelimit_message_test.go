package server

import (
	"strings"
	"testing"
	"time"
)

// TestRateLimitedMessageSaysTheSeconds: the message of a RATE_LIMITED
// error names the wait as extensions.retryAfter has it, never rounded down
// nor in exponent form.
func TestRateLimitedMessageSaysTheSeconds(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want string
	}{
		{400 * time.Microsecond, "retry in 0.001s"},
		{12345 * time.Millisecond, "retry in 12.345s"},
		{1234500 * time.Millisecond, "retry in 1234.5s"},
		{2 * time.Hour, "retry in 7200s"},
	} {
		e := rateLimitedError("too many operations", tt.wait)
		if !strings.HasSuffix(e.Message, "; "+tt.want) {
			t.Errorf("wait %v: message %q, want it to end %q", tt.wait, e.Message, tt.want)
		}
	}
}
