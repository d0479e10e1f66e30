package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/auth"
)

// requestMarkKey keys the requestMark a markingFront puts in the context
// of each request it passes on.
type requestMarkKey struct{}

// requestMark names the request whose context carries it: the front it
// came through, its method and its stream token.
type requestMark struct{ tag string }

// markingFront serves a replica's server behind a handler that puts a
// requestMark of its own in each request's context, as an embedder's
// middleware would put its values, and remembers the marks of the POSTs.
type markingFront struct {
	name  string
	mu    sync.Mutex
	posts []weak.Pointer[requestMark]
}

// markRequests returns r served behind a markingFront called name.
func markRequests(t *testing.T, r *replica, name string) (*replica, *markingFront) {
	t.Helper()
	f := &markingFront{name: name}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		m := &requestMark{tag: f.name + " " + req.Method + " " + req.Header.Get(streamTokenHeader)}
		if req.Method == http.MethodPost {
			f.mu.Lock()
			f.posts = append(f.posts, weak.Make(m))
			f.mu.Unlock()
		}
		r.server.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), requestMarkKey{}, m)))
	}))
	t.Cleanup(hs.Close)
	fronted := *r
	fronted.http = hs
	return &fronted, f
}

// lastPost is the mark of the last POST the front passed on.
func (f *markingFront) lastPost(t *testing.T) weak.Pointer[requestMark] {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.posts) == 0 {
		t.Fatalf("no POST went through front %s", f.name)
	}
	return f.posts[len(f.posts)-1]
}

// collected reports whether what p points to is collected within d.
func collected(p weak.Pointer[requestMark], d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		runtime.GC()
		if p.Value() == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSingleOperationLetsItsRequestGo: a subscription started on a
// single-connection-mode stream runs on after the POST that sent it has
// been answered, and keeps nothing of that request's context: not its
// values (a middleware's, here a requestMark), nor net/http's contexts of
// the request and its connection behind them. An operation whose context
// derived from the POST's, even through context.WithoutCancel, kept all
// of them reachable, about 1.1 KiB for each subscription a stream holds,
// where one on a WebSocket holds 300 to 400 B. Both for a POST sent to the
// stream's replica and for one relayed from another.
func TestSingleOperationLetsItsRequestGo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		relayed bool
	}{
		{name: "posted to the stream's replica"},
		{name: "relayed from another replica", relayed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			relay := NewLocalRelay()
			shared := func(o *Options) { o.Relay = relay }
			holder, holderFront := markRequests(t, newReplica(t, shared), "holder")
			sender, senderFront := holder, holderFront
			if tc.relayed {
				sender, senderFront = markRequests(t, newReplica(t, shared), "sender")
			}
			room := holder.room("lets-its-request-go")
			token := holder.reserve("ann")
			c := holder.openSingle(token, "ann")

			sender.mustOperate(token, "ann", "s1", postedSub, map[string]any{"r": room})
			waitFor(t, "the subscription", func() bool { return holder.members() == 1 })
			if !collected(senderFront.lastPost(t), 5*time.Second) {
				t.Fatal("the POST that started the subscription was answered, and its context is still reachable: the running operation keeps it")
			}
			holder.post(room, "bob", "still running")
			if got := c.expect("next", "s1").text(t); got != "still running" {
				t.Fatalf("the subscription got %q, want %q", got, "still running")
			}
		})
	}
}

// nameAuth authenticates X-Herald-User "user/name" as user, called name:
// two requests of one user with different credentials.
type nameAuth struct{ auth.Dev }

func (nameAuth) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	v := r.Header.Get(auth.DevHeader)
	if v == "" {
		return auth.Identity{}, false, nil
	}
	user, name, _ := strings.Cut(v, "/")
	return auth.Identity{UserID: user, Name: name}, true, nil
}

// viewerMarks remembers the requestMark in the context the viewer field
// last resolved with.
type viewerMarks struct {
	mu   sync.Mutex
	last string
}

func (v *viewerMarks) middleware(ctx context.Context, next graphql.Resolver) (any, error) {
	if f := graphql.GetFieldContext(ctx); f != nil && f.Object == "Query" && f.Field.Name == "viewer" {
		tag := "none"
		if m, ok := ctx.Value(requestMarkKey{}).(*requestMark); ok {
			tag = m.tag
		}
		v.mu.Lock()
		v.last = tag
		v.mu.Unlock()
	}
	return next(ctx)
}

func (v *viewerMarks) take() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	tag := v.last
	v.last = ""
	return tag
}

// TestSingleOperationActsAsItsRequest: an operation on a
// single-connection-mode stream acts with the identity of the request that
// sent it, which is the stream's user (another's is refused) but may carry
// other credentials than those the stream was opened with (a refreshed
// token); and it sees the values of the request that opened the stream,
// as an operation on a socket sees those of its upgrade, not those of the
// POST, which it must not keep (TestSingleOperationLetsItsRequestGo).
// Whether the POST reached the stream's replica or was relayed to it.
func TestSingleOperationActsAsItsRequest(t *testing.T) {
	relay := NewLocalRelay()
	marks := &viewerMarks{}
	tweak := func(o *Options) {
		o.Relay = relay
		o.Authenticator = nameAuth{}
		o.AroundFields = marks.middleware
	}
	holder, _ := markRequests(t, newReplica(t, tweak), "holder")
	other, _ := markRequests(t, newReplica(t, tweak), "other")
	for _, tc := range []struct {
		name           string
		relayed        bool
		opener, poster string // X-Herald-User of the stream's GET and of the POST
		want           string // the query's result
	}{
		{name: "the stream's credentials", opener: "ann/opened", poster: "ann/opened",
			want: `{"data":{"viewer":{"name":"opened"}}}`},
		{name: "other credentials of its user", opener: "ann/opened", poster: "ann/refreshed",
			want: `{"data":{"viewer":{"name":"refreshed"}}}`},
		{name: "anonymous", want: `{"data":{"viewer":null}}`},
		// An identity with no user is, to the stream, anonymous: an
		// anonymous POST may use it, and acts anonymously.
		{name: "anonymous, on a stream opened with an identity of no user", opener: "/opened",
			want: `{"data":{"viewer":null}}`},
		{name: "relayed, the stream's credentials", relayed: true, opener: "ann/opened", poster: "ann/opened",
			want: `{"data":{"viewer":{"name":"opened"}}}`},
		{name: "relayed, other credentials of its user", relayed: true, opener: "ann/opened", poster: "ann/refreshed",
			want: `{"data":{"viewer":{"name":"refreshed"}}}`},
		{name: "relayed, anonymous", relayed: true, want: `{"data":{"viewer":null}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := holder
			if tc.relayed {
				sender = other
			}
			token := holder.reserve(tc.opener)
			c := holder.openSingle(token, tc.opener)
			defer func() { _ = c.resp.Body.Close() }()
			sender.mustOperate(token, tc.poster, "q1", `{ viewer { name } }`, nil)
			if ev := c.expect("next", "q1"); string(ev.payload) != tc.want {
				t.Errorf("result %s, want %s", ev.payload, tc.want)
			}
			c.expect("complete", "q1")
			if got, want := marks.take(), "holder GET "+token; got != want {
				t.Errorf("the operation saw the values of request %q, want those of the stream's GET (%q)", got, want)
			}
		})
	}
}
