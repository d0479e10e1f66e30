package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// heldOperations is an executable schema whose operations named "held"
// wait, before their resolvers run, until release is closed or their
// context ends (then saying so on ended): a query or mutation in flight
// for as long as a test needs.
type heldOperations struct {
	graphql.ExecutableSchema
	entered chan struct{} // a value for each held operation that began
	release chan struct{} // closed to let them go on
	ended   chan struct{} // a value for each whose context ended first
}

func newHeldOperations() *heldOperations {
	return &heldOperations{entered: make(chan struct{}, 8), release: make(chan struct{}), ended: make(chan struct{}, 8)}
}

func (s *heldOperations) Exec(ctx context.Context) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Name == "held" {
		s.entered <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			s.ended <- struct{}{}
		}
	}
	return s.ExecutableSchema.Exec(ctx)
}

// holding serves a replica's schema through s.
func (s *heldOperations) holding(o *Options) {
	s.ExecutableSchema = o.Schema
	o.Schema = s
}

// heldMutation posts "kept" to the room passed as $r, once let go.
const heldMutation = `mutation held($r: ID!) { postMessage(roomId: $r, text: "kept") { text } }`

// httpAnswer is an HTTP answer as a test reads it.
type httpAnswer struct {
	status int
	header http.Header
	body   string
}

// exchange sends a request with a JSON body (nil: none) to url and reads
// the whole answer, within 20 s.
func exchange(method, url string, header http.Header, body any) (httpAnswer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return httpAnswer{}, fmt.Errorf("encode the body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return httpAnswer{}, fmt.Errorf("new %s request: %w", method, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Timeout: 20 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return httpAnswer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return httpAnswer{}, fmt.Errorf("read the answer to %s %s: %w", method, url, err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// mustExchange is exchange failing the test on an error.
func mustExchange(t *testing.T, method, url string, header http.Header, body any) httpAnswer {
	t.Helper()
	a, err := exchange(method, url, header, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// wantUnavailable reports an error unless a is the refusal of a draining
// replica: 503 with Retry-After and the code UNAVAILABLE.
func wantUnavailable(t *testing.T, what string, a httpAnswer) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
		!strings.Contains(a.body, `"code":"UNAVAILABLE"`) {
		t.Errorf("%s: %d (Retry-After %q) %s, want 503 with Retry-After and UNAVAILABLE", what, a.status, a.header.Get("Retry-After"), a.body)
	}
}

// startDrain drains r's server on a goroutine of its own, bounded by
// deadline, and returns once it has begun; Drain's result comes on the
// channel.
func startDrain(t *testing.T, r *replica, deadline time.Duration) <-chan error {
	t.Helper()
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		drained <- r.server.Drain(ctx, 0)
	}()
	waitFor(t, "the drain to begin", r.server.sessions.isDraining)
	return drained
}

// wantDrained fails unless Drain returns nil within 10 s: every session
// finished by itself, nothing was dropped.
func wantDrained(t *testing.T, drained <-chan error) {
	t.Helper()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return within 10s")
	}
}

// wantDropFinished fails unless Drain returns within 5 s without giving up
// on a session: past its deadline it dropped them, and each dropped one
// finished.
func wantDropFinished(t *testing.T, drained <-chan error) {
	t.Helper()
	select {
	case err := <-drained:
		if err != nil && strings.Contains(err.Error(), "gave up") {
			t.Fatalf("Drain = %v, want every dropped session finished", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return within 5s")
	}
}

// restOfSingle reads a single-connection-mode stream until it ends and
// returns its events.
func (c *sseClient) restOfSingle(within time.Duration) []singleEvent {
	c.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	var evs []singleEvent
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return evs
			}
			if ev.comment {
				continue
			}
			var data struct {
				ID      string          `json:"id"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal([]byte(ev.data), &data); err != nil {
				c.t.Fatalf("event %+v: data is not {id, payload} (%v)", ev, err)
			}
			evs = append(evs, singleEvent{event: ev.event, id: data.ID, payload: data.Payload})
		case <-timer.C:
			c.t.Fatalf("the stream did not end within %s (events so far: %d)", within, len(evs))
		}
	}
}

// TestDrainLetsRunningOperationsFinish: a query or mutation running when
// the replica drains gets its result to its client, on every transport
// that runs one over HTTP. On graphql-sse's single connection mode the
// drain used to end the stream at once, losing the result of every
// operation it had accepted with 202: the client, which sends its
// operations again on a new stream, would have posted a stored message
// twice. Now the stream refuses new operations (503, as a draining replica
// does), waits for those it runs (not for its subscriptions), sends their
// results and ends; the same through the relay from another replica.
// Distinct connections mode (an event stream of one operation) and a
// mutation sent with Apollo's multipart Accept (answered as JSON) already
// let it finish.
func TestDrainLetsRunningOperationsFinish(t *testing.T) {
	type started struct {
		via    *replica                            // where the single connection mode's requests are sent; nil otherwise
		token  string                              // the stream's
		result func(t *testing.T) (payload string) // waits for the held operation's result, after the release
	}
	// single runs the mutation on a single-connection stream of a, its
	// requests sent to via (a, or b to relay them), next to a
	// subscription, which the drain does not wait for.
	single := func(t *testing.T, a, via *replica, room string) started {
		token := a.reserve("ann")
		c := a.openSingle(token, "ann")
		via.mustOperate(token, "ann", "s1", postedSub, map[string]any{"r": room})
		waitFor(t, "the subscription", func() bool { return a.members() == 1 })
		via.mustOperate(token, "ann", "m1", heldMutation, map[string]any{"r": room})
		return started{via: via, token: token, result: func(t *testing.T) string {
			// The subscription's event of the message may come
			// anywhere, or be cut by the stream's end.
			var got []string
			payload := ""
			for _, ev := range c.restOfSingle(10 * time.Second) {
				if ev.id == "m1" {
					got = append(got, ev.event)
				}
				if ev.id == "m1" && ev.event == "next" {
					payload = string(ev.payload)
				}
			}
			if len(got) != 2 || got[0] != "next" || got[1] != "complete" {
				t.Fatalf("the stream ended with %v for the mutation, want next and complete", got)
			}
			return payload
		}}
	}
	tests := []struct {
		name    string
		relayed bool // the test needs a second replica
		start   func(t *testing.T, a, b *replica, room string) started
	}{
		{"single connection", false, func(t *testing.T, a, _ *replica, room string) started { return single(t, a, a, room) }},
		{"single connection, operations relayed", true, single},
		{"event stream", false, func(t *testing.T, a, _ *replica, room string) started {
			c, status, body := a.openSSE(sseRequest{method: http.MethodPost, query: heldMutation, vars: map[string]any{"r": room},
				header: http.Header{"X-Herald-User": {"ann"}}})
			if c == nil {
				t.Fatalf("POST the mutation as an event stream: %d %s", status, body)
			}
			return started{result: func(t *testing.T) string {
				next := c.next()
				if next.event != "next" {
					t.Fatalf("got %+v, want the mutation's result", next)
				}
				if ev := c.next(); ev.event != "complete" {
					t.Fatalf("got %+v, want complete", ev)
				}
				c.expectEnd(5 * time.Second)
				return next.data
			}}
		}},
		{"multipart Accept", false, func(t *testing.T, a, _ *replica, room string) started {
			answered := make(chan httpAnswer, 1)
			failed := make(chan error, 1)
			go func() {
				ans, err := exchange(http.MethodPost, a.http.URL+"/graphql",
					http.Header{"X-Herald-User": {"ann"}, "Accept": {acceptMultipart}},
					map[string]any{"query": heldMutation, "variables": map[string]any{"r": room}})
				if err != nil {
					failed <- err
					return
				}
				answered <- ans
			}()
			return started{result: func(t *testing.T) string {
				select {
				case err := <-failed:
					t.Fatal(err)
					return ""
				case ans := <-answered:
					if ans.status != http.StatusOK {
						t.Fatalf("the mutation: %d %s, want 200", ans.status, ans.body)
					}
					return ans.body
				case <-time.After(10 * time.Second):
					t.Fatal("the mutation was not answered within 10s")
					return ""
				}
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := newHeldOperations()
			relay := NewLocalRelay()
			a := newReplica(t, func(o *Options) { o.Relay = relay; held.holding(o) })
			var b *replica
			if tt.relayed {
				b = newReplica(t, func(o *Options) { o.Relay = relay })
			}
			room := a.room("drain-running")
			s := tt.start(t, a, b, room)
			receive(t, held.entered, 5*time.Second, "the mutation to run")

			drained := startDrain(t, a, 20*time.Second)
			if s.via != nil {
				// The stream takes no new operation from the moment it is
				// told to go away; until then, one is served as usual.
				var refused httpAnswer
				for i := 0; ; i++ {
					refused = mustExchange(t, http.MethodPost, s.via.http.URL+"/graphql",
						http.Header{streamTokenHeader: {s.token}, "X-Herald-User": {"ann"}},
						map[string]any{"query": "{ __typename }", "extensions": map[string]any{"operationId": fmt.Sprint("q", i)}})
					if refused.status != http.StatusAccepted || i == 100 {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				wantUnavailable(t, "an operation sent to a stream of a draining replica", refused)
			}
			close(held.release)
			if payload := s.result(t); !strings.Contains(payload, `{"postMessage":{"text":"kept"}}`) {
				t.Fatalf("the mutation's result %s, want the message posted", payload)
			}
			wantDrained(t, drained)
			if n := a.members(); n != 0 {
				t.Fatalf("%d subscriptions left after the drain", n)
			}
		})
	}
}

// TestSSESingleDrainDeadlineCancelsRunningOperation: the wait for a
// single-connection stream's running query or mutation is bounded by the
// drain's deadline: then the stream is dropped and the operation's
// context ends, and the drain gives up on nothing.
func TestSSESingleDrainDeadlineCancelsRunningOperation(t *testing.T) {
	held := newHeldOperations()
	r := newReplica(t, held.holding)
	room := r.room("drain-deadline")
	token := r.reserve("ann")
	c := r.openSingle(token, "ann")
	r.mustOperate(token, "ann", "m1", heldMutation, map[string]any{"r": room})
	receive(t, held.entered, 5*time.Second, "the mutation to run")

	drained := startDrain(t, r, 300*time.Millisecond)
	receive(t, held.ended, 5*time.Second, "the mutation's context to end at the drain's deadline")
	c.restOfSingle(5 * time.Second)
	wantDropFinished(t, drained)
}

// TestSSESingleReservationHandedOverDuringDrain: a stream reserved on a
// replica just before it drains is opened on another (the load balancer
// took the draining one out): its reservation is handed over as any is
// within its 30 s, not forgotten by the drain, and is still forgotten once
// it lapses. The draining replica refuses new reservations and opening a
// stream itself, with 503.
func TestSSESingleReservationHandedOverDuringDrain(t *testing.T) {
	relay := NewLocalRelay()
	a := newReplica(t, func(o *Options) { o.Relay = relay })
	b := newReplica(t, func(o *Options) { o.Relay = relay })
	a.server.sseSingle.reserveFor = 3 * time.Second
	refusedHere, openedElsewhere, lapsing := a.reserve("ann"), a.reserve("ann"), a.reserve("ann")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.server.StartDrain()
	if err := a.server.Drain(ctx, 0); err != nil {
		t.Fatalf("Drain: %v", err)
	}

	url := a.http.URL + "/graphql"
	for _, tc := range []struct {
		name   string
		method string
		header http.Header
	}{
		{"a new reservation", http.MethodPut, http.Header{"X-Herald-User": {"ann"}}},
		{"opening a reserved stream on the draining replica", http.MethodGet,
			http.Header{"X-Herald-User": {"ann"}, "Accept": {mediaEventStream}, streamTokenHeader: {refusedHere}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantUnavailable(t, tc.name, mustExchange(t, tc.method, url, tc.header, nil))
		})
	}
	for _, token := range []string{openedElsewhere, refusedHere} {
		c := b.openSingle(token, "ann")
		// Operations sent to the draining replica are relayed to the
		// stream's.
		a.mustOperate(token, "ann", "q1", `{ __typename }`, nil)
		c.expect("next", "q1")
		c.expect("complete", "q1")
	}
	waitFor(t, "the reservation never opened to lapse", func() bool {
		s := a.server.sseSingle
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.held) == 0 && s.reserved == 0
	})
	if status, body := b.do(singleReq{method: http.MethodGet, token: lapsing, user: "ann", accept: mediaEventStream}); status != http.StatusNotFound {
		t.Fatalf("opening a lapsed reservation: %d %s, want 404", status, body)
	}
}
