package server

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

// heldInitAuth is the Dev authenticator whose connection_init check
// signals entered and waits for release; with ignoreCtx it does not heed
// its context (a service client without one).
type heldInitAuth struct {
	auth.Dev
	entered   chan struct{}
	release   chan struct{}
	ignoreCtx bool
}

func (a heldInitAuth) FromInitPayload(ctx context.Context, p map[string]any) (auth.Identity, bool, error) {
	a.entered <- struct{}{}
	if a.ignoreCtx {
		<-a.release
	} else {
		select {
		case <-a.release:
		case <-ctx.Done():
			return auth.Identity{}, false, ctx.Err()
		}
	}
	return a.Dev.FromInitPayload(ctx, p)
}

// TestDrainDuringConnectionInit: a drain reaches a socket whose
// connection_init is still being checked. It is closed with 1001, and a
// legacy start held until the ack is not run.
func TestDrainDuringConnectionInit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proto     string
		ignoreCtx bool
	}{
		{"transport ws, check heeds ctx", subprotocolTransportWS, false},
		{"transport ws, check ignores ctx", subprotocolTransportWS, true},
		{"legacy, check heeds ctx", subprotocolLegacy, false},
		{"legacy, check ignores ctx", subprotocolLegacy, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema := newGatedSchema(t, 4)
			authn := heldInitAuth{entered: make(chan struct{}, 4), release: make(chan struct{}), ignoreCtx: tc.ignoreCtx}
			s, _ := newTestServer(t, func(o *Options) {
				o.Schema = schema
				o.Authenticator = authn
				o.PingInterval = time.Minute
				o.InitTimeout = 20 * time.Second
			})
			hs := httptest.NewServer(s)
			t.Cleanup(hs.Close)
			r := &replica{t: t, server: s, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
			c := r.dial(tc.proto)
			c.init("u")
			if tc.proto == subprotocolLegacy {
				c.subscribe("start", "early", "mutation gate { bump }", nil)
			}
			receive(t, authn.entered, 5*time.Second, "the init check to begin")

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			drained := make(chan error, 1)
			began := time.Now()
			go func() { drained <- s.Drain(ctx, 0) }()
			if tc.ignoreCtx {
				time.Sleep(300 * time.Millisecond)
				close(authn.release)
			} else {
				t.Cleanup(func() { close(authn.release) })
			}
			var got []string
			code := 0
			for {
				f, err := c.read(5 * time.Second)
				if err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) {
						t.Fatalf("socket ended with %v after %s, want a close frame", err, got)
					}
					code = ce.Code
					break
				}
				got = append(got, f.raw)
			}
			if code != closeGoingAway {
				t.Errorf("close code %d, want %d (going away); frames before: %v", code, closeGoingAway, got)
			}
			select {
			case err := <-drained:
				if err != nil {
					t.Errorf("Drain = %v, want nil", err)
				}
				if took := time.Since(began); took > 3*time.Second {
					t.Errorf("Drain took %v", took)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Drain did not return")
			}
			select {
			case <-schema.entered:
				t.Error("the legacy start held until the ack ran after the drain told the socket to go away")
			default:
			}
			t.Logf("frames before the close: %v", got)
		})
	}
}
