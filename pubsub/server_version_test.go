package pubsub

import (
	"errors"
	"strings"
	"testing"
)

// TestServerBefore211Refused: nats-server 2.10 (JetStream API level 0)
// ignores Nats-Expected-Last-Subject-Sequence-Subject, so AppendKeyed
// would store a stale write and refuse a current one there. Open refuses
// such a server, saying which version it found and which it needs;
// level 1 (2.11) and later pass. (Every other test runs against the
// embedded server, of a level that passes.)
func TestServerBefore211Refused(t *testing.T) {
	for _, tt := range []struct {
		level   int
		refused bool
	}{{0, true}, {-1, true}, {minJSAPILevel, false}, {3, false}} {
		err := checkAPILevel("nats://127.0.0.1:4222", "2.10.29", tt.level)
		switch {
		case tt.refused && !errors.Is(err, ErrServerTooOld):
			t.Errorf("API level %d: %v; want ErrServerTooOld", tt.level, err)
		case tt.refused && !(strings.Contains(err.Error(), "nats-server 2.10.29") && strings.Contains(err.Error(), "needs nats-server 2.11 or later")):
			t.Errorf("API level %d: %q; want it to name the version found and the one needed", tt.level, err)
		case !tt.refused && err != nil:
			t.Errorf("API level %d: %v; want it accepted", tt.level, err)
		}
	}
}
