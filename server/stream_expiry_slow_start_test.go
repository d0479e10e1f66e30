package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/golang-jwt/jwt/v5"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// slowStartSchema is a schema whose subscriptions' resolvers take a while
// to start (as one waiting for the replica to reach a cursor does): the
// first subscription's Exec, once its resolver has run and watches the
// room, calls hold before returning.
type slowStartSchema struct {
	graphql.ExecutableSchema
	once sync.Once
	hold func()
}

func (s *slowStartSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	h := s.ExecutableSchema.Exec(ctx)
	if rc := graphql.GetOperationContext(ctx); rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		s.once.Do(s.hold)
	}
	return h
}

// TestNoEventAfterExpiryDuringSlowStart: an event stream whose token
// expires while its subscription is still starting must deliver nothing
// posted after the expiry: README, "no event that comes after exp is
// delivered on it (nor on an event stream)". A socket checks the expiry
// at each delivery; a stream is sealed only by the timer its loop (or
// park) sets up once the subscription has joined, so the events the
// execution handed it meanwhile are written before the UNAUTHENTICATED end.
func TestNoEventAfterExpiryDuringSlowStart(t *testing.T) {
	for _, kind := range []string{"sse", "multipart"} {
		t.Run(kind, func(t *testing.T) {
			secret := []byte(strings.Repeat("s", 32))
			authn, err := auth.NewJWT(context.Background(), auth.JWTOptions{Secret: secret})
			if err != nil {
				t.Fatal(err)
			}
			var (
				r       *replica
				room    string
				exp     time.Time
				postErr error
			)
			slow := &slowStartSchema{}
			slow.hold = func() {
				time.Sleep(time.Until(exp.Add(300 * time.Millisecond)))
				for i := range 3 {
					if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "bob"}, room, "AFTER-"+string(rune('a'+i)), ""); err != nil {
						postErr = err
					}
				}
				time.Sleep(300 * time.Millisecond) // into the resolver's channel
			}
			r = newReplica(t, func(o *Options) {
				o.Authenticator = authn
				slow.ExecutableSchema = o.Schema
				o.Schema = slow
			})
			room = r.room("slow-start-" + kind)
			tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Truncate(time.Second).Add(3 * time.Second).Unix()}).SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			exp = tokenExp(t, tok)
			h := http.Header{"Authorization": {"Bearer " + tok}}
			sse, mp := openPostedStream(t, r, kind, room, h, nil, false)
			if postErr != nil {
				t.Fatalf("post: %v", postErr)
			}
			ended, after := expiredStreamEnd(t, sse, mp)
			if !ended {
				t.Errorf("the stream did not end with UNAUTHENTICATED")
			}
			if len(after) > 0 {
				t.Fatalf("%s: %d events posted 300 ms after the token expired were delivered: %q", kind, len(after), after)
			}
		})
	}
}
