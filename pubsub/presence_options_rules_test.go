package pubsub

import (
	"strings"
	"testing"
	"time"
)

// TestPresenceOptionsBounds: PresenceOptions' documented bounds are
// enforced by Log.Presence: a TTL under 1s, a Heartbeat not shorter than
// the TTL (the liveness key would expire as the next heartbeat comes, so
// replicas would flap), and a KeyTTL not longer than the TTL are refused
// with an error naming the option; the values just inside each bound are
// taken.
func TestPresenceOptionsBounds(t *testing.T) {
	l := openEmbedded(t, Options{})
	for _, tc := range []struct {
		name string
		opts PresenceOptions
		want string // "" for accepted
	}{
		{"TTL under 1s", PresenceOptions{TTL: 999 * time.Millisecond, Heartbeat: 300 * time.Millisecond}, "TTL"},
		{"TTL of 1s", PresenceOptions{TTL: time.Second}, ""},
		{"heartbeat equal to the TTL", PresenceOptions{TTL: 2 * time.Second, Heartbeat: 2 * time.Second}, "heartbeat"},
		{"heartbeat just under the TTL", PresenceOptions{TTL: 2 * time.Second, Heartbeat: 2*time.Second - time.Millisecond}, ""},
		{"key TTL equal to the TTL", PresenceOptions{TTL: 2 * time.Second, KeyTTL: 2 * time.Second}, "key TTL"},
		{"key TTL just over the TTL", PresenceOptions{TTL: 2 * time.Second, KeyTTL: 2*time.Second + time.Millisecond}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Replica = "r1"
			p, err := l.Presence(testCtx(t, 10*time.Second), tc.opts)
			if err == nil {
				_ = p.Close(testCtx(t, 5*time.Second))
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Log.Presence(%+v) = %v; the value is within PresenceOptions' bounds and must be taken", tc.opts, err)
			case tc.want != "" && err == nil:
				t.Fatalf("Log.Presence(%+v) succeeded; PresenceOptions' bound on the %s must refuse it", tc.opts, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Log.Presence(%+v) = %q; the error must name the %s", tc.opts, err, tc.want)
			}
		})
	}
}
