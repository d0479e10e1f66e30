package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/testrig"
)

// relayStallingAuth is auth.Dev, except that, once armed, it checks the
// credentials of a request relayed from another replica until the
// request's context ends, then reports that it could not check them: an
// authenticator whose provider is slower than a relayed request may take
// (relayServe), a JWKS refetch with a FetchTimeout above 15 s, say.
type relayStallingAuth struct {
	auth.Dev
	armed *atomic.Bool
}

func (a relayStallingAuth) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	if a.armed.Load() && isRelayed(r.Context()) {
		<-r.Context().Done()
		return auth.Identity{}, false, fmt.Errorf("fetch JWKS: %w", r.Context().Err())
	}
	return a.Dev.FromRequest(r)
}

// TestRelayedRequestIsAlwaysAnswered: a request relayed to the replica
// holding its stream is served there within relayServe, its context
// ending then, while its client still waits on the forwarding replica
// (relayWait is longer), which writes the status the holder answers. A
// path that answers nothing once the context has ended (taking it for a
// client that left) left the holder's recorder without a status, which
// was relayed as 200 with an empty body: the client read its operation as
// accepted, and it had never started. Such a request is answered 503, as
// a relayed start that outlasts relayServe is:
//   - credentials the authenticator could not check within relayServe
//     (credentialsUnchecked, since 6e0082b), logged as the error it is;
//   - any path of the holder's that answers nothing (serveRelayed's
//     backstop).
func TestRelayedRequestIsAlwaysAnswered(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tweak   func(a *replica, armed *atomic.Bool)
		message string
		log     string
	}{
		{"credentials unchecked within relayServe", func(_ *replica, armed *atomic.Bool) { armed.Store(true) },
			"authentication is unavailable; try again later", "server: cannot authenticate request"},
		{"a handler that answers nothing", func(a *replica, _ *atomic.Bool) {
			a.server.sseSingle.replay = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
		}, "gave no answer to the request; try again", "server: a relayed request was answered nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay := NewLocalRelay()
			armed := &atomic.Bool{}
			a, logs := serveRelaying(t, func(o *Options) {
				o.Relay = relay
				o.Authenticator = relayStallingAuth{armed: armed}
			})
			a.server.sseSingle.relayServe = 500 * time.Millisecond
			tc.tweak(a, armed) // before a serves anything
			b, _ := serveRelaying(t, func(o *Options) { o.Relay = relay })

			token := b.reserve("ann")
			a.openSingle(token, "ann") // the stream is on a
			var status int
			var body string
			within(t, 10*time.Second, "the relayed POST to be answered", func() {
				status, body = b.operation(token, "ann", "q1", `{ hello(name: "x") }`, nil)
			})
			if status != http.StatusServiceUnavailable || !strings.Contains(body, tc.message) ||
				!strings.Contains(body, `"code":"UNAVAILABLE"`) {
				t.Fatalf("the relayed operation: %d %q, want 503 UNAVAILABLE saying %q",
					status, strings.TrimSpace(body), tc.message)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("the holder's log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// TestRelayRecorderAnswersNothingAsNot200: the recorder of a relayed
// request's answer relays one with nothing written as 502, not as the 200
// net/http would write: the forwarding replica writes that status to a
// client waiting for it, and a 200 with no body reads as accepted.
func TestRelayRecorderAnswersNothingAsNot200(t *testing.T) {
	if status := relayedStatus(newRelayRecorder().message()); status != http.StatusBadGateway {
		t.Fatalf("nothing written is relayed as %d, want %d", status, http.StatusBadGateway)
	}
	rec := newRelayRecorder()
	_, _ = rec.Write([]byte("{}"))
	if status := relayedStatus(rec.message()); status != http.StatusOK {
		t.Fatalf("a body written alone is relayed as %d, want %d", status, http.StatusOK)
	}
}

// serveRelaying serves the fake schema as one replica of several, after
// tweak, which sets the Relay they share.
func serveRelaying(t *testing.T, tweak func(*Options)) (*replica, *testrig.LogBuffer) {
	t.Helper()
	srv, logs := newTestServer(t, tweak)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &replica{t: t, server: srv, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}, logs
}
