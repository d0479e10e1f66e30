package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

// sseEvent is one event of a stream as a client sees it; comment is set
// for a comment line (a keepalive) instead.
type sseEvent struct {
	event, id, data string
	comment         bool
}

// sseClient reads an event stream on a goroutine of its own, which ends
// when the stream does (the test's cleanup closes it).
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	ended  chan struct{} // closed when the stream has ended
	err    error         // why it ended; read after ended
	start  chan struct{} // closed when the client may read
	once   sync.Once
}

// resume lets a paused client read.
func (c *sseClient) resume() { c.once.Do(func() { close(c.start) }) }

// sseRequest describes a request that opens a stream.
type sseRequest struct {
	method string // GET or POST
	query  string
	vars   map[string]any
	header http.Header
	dial   func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the default
	url    string                                                            // "": the replica's
	paused bool                                                              // read nothing until resume is called
}

// openSSE sends req and returns its response: a stream when the status is
// 200 and the Content-Type an event stream, otherwise the body is in body.
func (r *replica) openSSE(req sseRequest) (c *sseClient, status int, body string) {
	r.t.Helper()
	target := req.url
	if target == "" {
		target = r.http.URL + "/graphql"
	}
	var hreq *http.Request
	var err error
	if req.method == http.MethodGet {
		q := url.Values{"query": {req.query}}
		if req.vars != nil {
			v, _ := json.Marshal(req.vars)
			q.Set("variables", string(v))
		}
		hreq, err = http.NewRequest(http.MethodGet, target+"?"+q.Encode(), nil)
	} else {
		b, _ := json.Marshal(map[string]any{"query": req.query, "variables": req.vars})
		hreq, err = http.NewRequest(http.MethodPost, target, bytes.NewReader(b))
		if err == nil {
			hreq.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		r.t.Fatal(err)
	}
	hreq.Header.Set("Accept", "text/event-stream")
	for k, vs := range req.header {
		hreq.Header[k] = vs
	}
	transport := &http.Transport{DisableCompression: true}
	if req.dial != nil {
		transport.DialContext = req.dial
	}
	r.t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport, Timeout: 0}
	resp, err := client.Do(hreq)
	if err != nil {
		r.t.Fatalf("%s /graphql: %v", req.method, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, resp.StatusCode, string(b)
	}
	c = &sseClient{t: r.t, resp: resp, events: make(chan sseEvent, 4096), ended: make(chan struct{}), start: make(chan struct{})}
	if !req.paused {
		c.resume()
	}
	go c.readLoop()
	r.t.Cleanup(func() {
		c.resume()
		_ = resp.Body.Close()
		<-c.ended
	})
	return c, resp.StatusCode, ""
}

// readLoop parses the stream into events until it ends.
func (c *sseClient) readLoop() {
	defer close(c.ended)
	defer close(c.events)
	<-c.start
	br := bufio.NewReader(c.resp.Body)
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			c.err = err
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.event != "" || len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				c.events <- ev
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			c.events <- sseEvent{comment: true}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				ev.event = value
			case "id":
				ev.id = value
			case "data":
				data = append(data, value)
			default:
				c.err = fmt.Errorf("unexpected field %q in line %q", field, line)
				return
			}
		}
	}
}

// next returns the next event that is not a comment, failing the test if
// none comes within 5 s.
func (c *sseClient) next() sseEvent {
	c.t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				c.t.Fatalf("the stream ended (%v) while an event was expected", c.err)
			}
			if !ev.comment {
				return ev
			}
		case <-timer.C:
			c.t.Fatal("no event within 5s")
		}
	}
}

// expectEnd waits for the stream to end, failing on any event but
// comments first.
func (c *sseClient) expectEnd(within time.Duration) {
	c.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return
			}
			if !ev.comment {
				c.t.Fatalf("got event %+v, want the stream to end", ev)
			}
		case <-timer.C:
			c.t.Fatalf("the stream did not end within %s", within)
		}
	}
}

// result decodes a next event's data.
func (ev sseEvent) result(t *testing.T) (data map[string]any, errs []map[string]any, ext map[string]any) {
	t.Helper()
	if ev.event != "next" {
		t.Fatalf("got event %q (%s), want next", ev.event, ev.data)
	}
	var body struct {
		Data       map[string]any   `json:"data"`
		Errors     []map[string]any `json:"errors"`
		Extensions map[string]any   `json:"extensions"`
	}
	if err := json.Unmarshal([]byte(ev.data), &body); err != nil {
		t.Fatalf("next event's data %q: %v", ev.data, err)
	}
	return body.Data, body.Errors, body.Extensions
}

// postedText is the text of a messagePosted result.
func (ev sseEvent) postedText(t *testing.T) string {
	t.Helper()
	data, errs, ext := ev.result(t)
	if len(errs) > 0 {
		t.Fatalf("errors in %s", ev.data)
	}
	if ev.id == "" || ev.id != ext["cursor"] {
		t.Fatalf("event id %q, want its cursor %v", ev.id, ext["cursor"])
	}
	posted, _ := data["messagePosted"].(map[string]any)
	text, _ := posted["text"].(string)
	return text
}

func (ev sseEvent) errorCode(t *testing.T) string {
	t.Helper()
	_, errs, _ := ev.result(t)
	if len(errs) != 1 {
		t.Fatalf("got %s, want one error", ev.data)
	}
	ext, _ := errs[0]["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

const postedSub = `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`

// TestSSESubscription: over GET (as EventSource sends it) and POST, a
// subscription streams one next event per result, carrying its cursor as
// the event id, in order.
func TestSSESubscription(t *testing.T) {
	r := newReplica(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			r := r.forTest(t)
			room := r.room("sse-" + method)
			c, status, body := r.openSSE(sseRequest{method: method, query: postedSub, vars: map[string]any{"r": room}})
			if c == nil {
				t.Fatalf("status %d: %s", status, body)
			}
			if h := c.resp.Header; h.Get("Cache-Control") != "no-cache, no-transform" || h.Get("X-Accel-Buffering") != "no" {
				t.Errorf("headers %v, want Cache-Control no-cache, no-transform and X-Accel-Buffering no", h)
			}
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			for i := range 3 {
				r.post(room, "a", fmt.Sprint("m", i))
			}
			for i := range 3 {
				if got, want := c.next().postedText(t), fmt.Sprint("m", i); got != want {
					t.Fatalf("event %d: %q, want %q", i, got, want)
				}
			}
			_ = c.resp.Body.Close()
			waitFor(t, "the stream to leave its execution", func() bool { return r.members() == 0 && r.openSockets() == 0 })
		})
	}
}

// TestSSESingleResults: queries and mutations over a stream are one next
// event and complete, and the stream ends; validation errors are a next
// event too, since EventSource cannot read an error response's body.
func TestSSESingleResults(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("single")
	tests := []struct {
		name, method, query string
		header              http.Header
		check               func(t *testing.T, data map[string]any, errs []map[string]any)
	}{
		{"query over GET", http.MethodGet, `{ __typename }`, nil, func(t *testing.T, data map[string]any, errs []map[string]any) {
			if data["__typename"] != "Query" || len(errs) > 0 {
				t.Errorf("data %v errors %v", data, errs)
			}
		}},
		{"mutation over POST", http.MethodPost, `mutation { postMessage(roomId: "` + room + `", text: "hi") { text } }`,
			http.Header{"X-Herald-User": {"ann"}}, func(t *testing.T, data map[string]any, errs []map[string]any) {
				if p, _ := data["postMessage"].(map[string]any); p["text"] != "hi" || len(errs) > 0 {
					t.Errorf("data %v errors %v", data, errs)
				}
			}},
		{"validation error", http.MethodGet, `{ nope }`, nil, func(t *testing.T, data map[string]any, errs []map[string]any) {
			if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]["message"]), "nope") {
				t.Errorf("errors %v, want one naming the field", errs)
			}
		}},
		{"parse error", http.MethodPost, `subscription {`, nil, func(t *testing.T, data map[string]any, errs []map[string]any) {
			if len(errs) != 1 {
				t.Errorf("errors %v, want one", errs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			c, status, body := r.openSSE(sseRequest{method: tt.method, query: tt.query, header: tt.header})
			if c == nil {
				t.Fatalf("status %d: %s", status, body)
			}
			data, errs, _ := c.next().result(t)
			tt.check(t, data, errs)
			if ev := c.next(); ev.event != "complete" {
				t.Fatalf("got %+v, want complete", ev)
			}
			c.expectEnd(5 * time.Second)
		})
	}
}

// TestSSERequestErrors: what is wrong with the request itself is answered
// as JSON with a status, as for any GraphQL-over-HTTP request.
func TestSSERequestErrors(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxVariablesBytes = 64 })
	tests := []struct {
		name   string
		req    sseRequest
		status int
		says   string
	}{
		{"mutation over GET", sseRequest{method: http.MethodGet, query: `mutation { createRoom(name: "x") { id } }`}, http.StatusMethodNotAllowed,
			`cannot be sent with GET; use POST","extensions":{"code":"BAD_REQUEST"}`},
		{"mutation over GET without its variable", sseRequest{method: http.MethodGet, query: `mutation($n: String!) { createRoom(name: $n) { id } }`},
			http.StatusMethodNotAllowed, `cannot be sent with GET; use POST","extensions":{"code":"BAD_REQUEST"}`},
		{"no query", sseRequest{method: http.MethodGet, query: ""}, http.StatusBadRequest, "no query"},
		{"variables over the limit", sseRequest{method: http.MethodPost, query: postedSub,
			vars: map[string]any{"r": strings.Repeat("x", 100)}}, http.StatusRequestEntityTooLarge, "limit of 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			c, status, body := r.openSSE(tt.req)
			if c != nil {
				t.Fatalf("got a stream, want %d", tt.status)
			}
			if status != tt.status || !strings.Contains(body, tt.says) {
				t.Fatalf("status %d body %s, want %d saying %q", status, body, tt.status, tt.says)
			}
		})
	}
}

// TestSSESharesExecutionWithWebSocket: a WebSocket subscriber and a stream
// subscriber of the same subscription share one execution, and both get
// every event.
func TestSSESharesExecutionWithWebSocket(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("shared")
	ws := r.dialTransport("w")
	ws.subscribe("subscribe", "1", postedSub, map[string]any{"r": room})
	c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatalf("status %d: %s", status, body)
	}
	waitFor(t, "both subscriptions", func() bool { return r.members() == 2 })
	if n := r.server.execs.count(); n != 1 {
		t.Fatalf("%d executions, want 1 shared by both transports", n)
	}
	r.post(room, "a", "one")
	if got := c.next().postedText(t); got != "one" {
		t.Errorf("stream got %q", got)
	}
	var got struct{ MessagePosted struct{ Text string } }
	ws.next().data(t, &got)
	if got.MessagePosted.Text != "one" {
		t.Errorf("socket got %q", got.MessagePosted.Text)
	}
}

// TestSSELastEventIDResumes: a stream reopened with Last-Event-ID (as
// EventSource does) continues after that event, with nothing lost and
// nothing repeated; one whose subscription has no variable for the resume
// argument is told how to write it rather than silently starting afresh.
func TestSSELastEventIDResumes(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("resume")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.post(room, "a", "m0")
	r.post(room, "a", "m1")
	c.next()
	last := c.next()
	if last.postedText(t) != "m1" {
		t.Fatalf("second event %+v", last)
	}
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to go", func() bool { return r.members() == 0 })
	r.post(room, "a", "m2")
	r.post(room, "a", "m3")

	c2, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room},
		header: http.Header{"Last-Event-Id": {last.id}}})
	if c2 == nil {
		t.Fatal(body)
	}
	for _, want := range []string{"m2", "m3"} {
		if got := c2.next().postedText(t); got != want {
			t.Fatalf("resumed stream got %q, want %q", got, want)
		}
	}
	r.post(room, "a", "m4")
	if got := c2.next().postedText(t); got != "m4" {
		t.Fatalf("after going live: %q, want m4", got)
	}

	// A Last-Event-ID that is no cursor of ours is answered precisely,
	// and the replica stays up for the next stream.
	bad, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room},
		header: http.Header{"Last-Event-Id": {"not a cursor \u00ff"}}})
	if bad == nil {
		t.Fatal(body)
	}
	if code := bad.next().errorCode(t); code != "BAD_USER_INPUT" {
		t.Fatalf("a bad Last-Event-ID: code %q, want BAD_USER_INPUT", code)
	}

	literal := `subscription { messagePosted(roomId: "` + room + `") { text } }`
	c3, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: literal, header: http.Header{"Last-Event-Id": {last.id}}})
	if c3 == nil {
		t.Fatal(body)
	}
	if code := c3.next().errorCode(t); code != "BAD_USER_INPUT" {
		t.Fatalf("code %q, want BAD_USER_INPUT", code)
	}
	if ev := c3.next(); ev.event != "complete" {
		t.Fatalf("got %+v, want complete", ev)
	}

	// A field that takes no cursor at all cannot resume: the refusal says
	// so, rather than asking for a variable the field cannot take.
	presence := `subscription($r: ID!) { roomPresence(roomId: $r) { kind } }`
	c4, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: presence, vars: map[string]any{"r": room},
		header: http.Header{"Last-Event-Id": {last.id}}})
	if c4 == nil {
		t.Fatal(body)
	}
	ev := c4.next()
	if code := ev.errorCode(t); code != "BAD_USER_INPUT" {
		t.Fatalf("roomPresence with Last-Event-ID: code %q, want BAD_USER_INPUT", code)
	}
	if !strings.Contains(ev.data, `takes no \"after\" argument`) || strings.Contains(ev.data, "declare one") {
		t.Fatalf("roomPresence with Last-Event-ID: %s, want it to say the field takes no \"after\" argument", ev.data)
	}
}

// TestSSEKeepalive: an idle stream gets a comment line every PingInterval,
// so proxies do not time it out.
func TestSSEKeepalive(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = 50 * time.Millisecond })
	room := r.room("idle")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	deadline := time.After(5 * time.Second)
	for comments := 0; comments < 4; {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended: %v", c.err)
			}
			if !ev.comment {
				t.Fatalf("unexpected event %+v", ev)
			}
			comments++
		case <-deadline:
			t.Fatal("fewer than 4 keepalive comments in 5s")
		}
	}
}

// TestSSESurvivesReadTimeout: the http.Server's ReadTimeout bounds reading
// the request, not the life of a stream (net/http clears the read deadline
// once the body is read; cmd/herald sets a ReadTimeout of 30 s).
func TestSSESurvivesReadTimeout(t *testing.T) {
	r := newReplica(t, nil)
	hs := httptest.NewUnstartedServer(r.server)
	hs.Config.ReadTimeout = 100 * time.Millisecond
	hs.Start()
	t.Cleanup(hs.Close) // after the stream's own cleanup, which runs first
	room := r.room("long")
	c, _, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: map[string]any{"r": room}, url: hs.URL + "/graphql"})
	if c == nil {
		t.Fatal(body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	time.Sleep(500 * time.Millisecond) // five read timeouts
	r.post(room, "a", "still here")
	if got := c.next().postedText(t); got != "still here" {
		t.Fatalf("got %q", got)
	}
}

// TestSSEDrain: a drain ends open streams (their clients reconnect
// elsewhere and resume) and refuses new ones with 503.
func TestSSEDrain(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("drain")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.server.StartDrain()
	_, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Fatalf("during a drain: %d %s, want 503", status, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.server.Drain(ctx, 0); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	c.expectEnd(5 * time.Second)
}

// TestSSECountsTowardMaxConnections: streams and sockets share the
// replica's connection limit.
func TestSSECountsTowardMaxConnections(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxConnections = 1 })
	room := r.room("full")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	_, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "limit of 1") {
		t.Fatalf("second stream: %d %s, want 503", status, body)
	}
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	if _, resp, err := d.Dial(r.wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a socket while a stream holds the limit: err %v, response %v; want 503", err, resp)
	}
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to give its place back", func() bool { return r.placesTaken() == 0 })
	r.dialTransport("now-fits")
}

// expiringAuth is Dev authentication whose identities expire after ttl.
type expiringAuth struct {
	auth.Dev
	ttl time.Duration
}

func (a expiringAuth) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	id, ok, err := a.Dev.FromRequest(r)
	if ok {
		id.ExpiresAt = time.Now().Add(a.ttl)
	}
	return id, ok, err
}

// TestSSEExpiry: a stream whose credentials expire ends with an
// UNAUTHENTICATED error and complete.
func TestSSEExpiry(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Authenticator = expiringAuth{ttl: 300 * time.Millisecond} })
	room := r.room("expiry")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room},
		header: http.Header{"X-Herald-User": {"ann"}}})
	if c == nil {
		t.Fatal(body)
	}
	if code := c.next().errorCode(t); code != "UNAUTHENTICATED" {
		t.Fatalf("code %q, want UNAUTHENTICATED", code)
	}
	if ev := c.next(); ev.event != "complete" {
		t.Fatalf("got %+v, want complete", ev)
	}
	c.expectEnd(5 * time.Second)
}

// TestSSESlowConsumerEndsAlone: a stream that stops reading falls behind
// and is ended with a SLOW_CONSUMER error once it reads again, after the
// events it had; a WebSocket subscriber of the same room keeps every
// event meanwhile.
func TestSSESlowConsumerEndsAlone(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.QueueMessages = 16
		o.QueueBytes = 1 << 20
	})
	room := r.room("slow")
	slow, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}, dial: tinyReceiveBuffer, paused: true})
	if slow == nil {
		t.Fatal(body)
	}
	fast := r.dialTransport("fast")
	fast.subscribe("subscribe", "1", postedSub, map[string]any{"r": room})
	waitFor(t, "both subscriptions", func() bool { return r.members() == 2 })

	// The fast socket reads everything while the stream's client does not
	// read at all until the stream has fallen behind.
	fastReader := readPosted(t, fast)
	posted := postUntilSlowClose(t, r, room)
	// The stream's client reads now: events, then the error, complete and
	// the end, with the events in order.
	slow.resume()
	n := 0
	for {
		ev := slow.next()
		if ev.event == "complete" {
			t.Fatal("complete without the SLOW_CONSUMER error")
		}
		_, errs, _ := ev.result(t)
		if len(errs) > 0 {
			if code := ev.errorCode(t); code != codeSlowConsumer {
				t.Fatalf("error code %q, want %s", code, codeSlowConsumer)
			}
			break
		}
		if got, want := ev.postedText(t), slowText(n); got != want {
			t.Fatalf("stream event %d out of order", n)
		}
		n++
	}
	if ev := slow.next(); ev.event != "complete" {
		t.Fatalf("got %+v, want complete", ev)
	}
	slow.expectEnd(5 * time.Second)
	if n >= posted {
		t.Fatalf("the slow stream got all %d events", n)
	}
	fastReader.expectAll(t, posted)
}

// acceptURQL is what urql's fetchExchange sends with every query and
// mutation: JSON and both kinds of stream, all at q=1.
const acceptURQL = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"

// TestEventStreamYieldsToJSON: a client whose Accept header lists a
// GraphQL JSON type at least as readily as text/event-stream (urql's
// fetchExchange does for every operation) gets its queries and mutations,
// and whatever is wrong with them, answered as JSON with the statuses of
// GraphQL over HTTP; only a subscription needs a stream. A client that
// asks for a stream alone (graphql-sse, EventSource), or prefers one, still
// gets one for any operation; one that accepts a stream less readily than
// JSON still gets one for a subscription, which JSON cannot carry.
func TestEventStreamYieldsToJSON(t *testing.T) {
	s, _ := newTestServer(t, nil)
	urql := func(q request) request { return q.with("Accept", acceptURQL) }
	const stream = "stream"
	tests := []struct {
		name string
		req  request
		want want // contentType stream: an event stream, whose body is not checked
	}{
		{"query", urql(post(helloBody)), want{status: 200, contentType: ctResponse, data: helloData}},
		{"GET query", urql(get("query", helloQuery, "variables", `{"name":"Ada"}`)),
			want{status: 200, contentType: ctResponse, data: helloData}},
		{"mutation", urql(post(`{"query":"mutation { bump }"}`)).with("X-Herald-User", "ann"),
			want{status: 200, contentType: ctResponse, data: `{"bump":1}`}},
		{"GET mutation", urql(get("query", "mutation { bump }")),
			want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
		{"validation error", urql(post(`{"query":"{ nope }"}`)),
			want{status: 400, contentType: ctResponse, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"malformed JSON", urql(post(`{"query":`)), want{status: 400, contentType: ctResponse, err: "not valid JSON", code: codeBadRequest}},
		{"application/json as readily", post(helloBody).with("Accept", "text/event-stream;q=0.5, application/json;q=0.5"),
			want{status: 200, contentType: ctJSON, data: helloData}},
		{"JSON preferred", post(helloBody).with("Accept", "application/json, text/event-stream;q=0.5"),
			want{status: 200, contentType: ctJSON, data: helloData}},
		{"subscription", urql(post(`{"query":"subscription { ticks }"}`)), want{status: 200, contentType: stream}},
		{"subscription, JSON preferred", post(`{"query":"subscription { ticks }"}`).with("Accept", "application/json, text/event-stream;q=0.5"),
			want{status: 200, contentType: stream}},
		{"GET subscription, JSON preferred", get("query", "subscription { ticks }").with("Accept", "application/json, text/event-stream;q=0.5"),
			want{status: 200, contentType: stream}},
		{"urql's subscription Accept", post(`{"query":"subscription { ticks }"}`).with("Accept", "text/event-stream, multipart/mixed"),
			want{status: 200, contentType: stream}},
		{"only an event stream", post(helloBody).with("Accept", "text/event-stream"), want{status: 200, contentType: stream}},
		{"an event stream preferred", post(helloBody).with("Accept", "text/event-stream, application/json;q=0.9"),
			want{status: 200, contentType: stream}},
		{"an event stream and a wildcard", post(helloBody).with("Accept", "text/event-stream, */*"),
			want{status: 200, contentType: stream}},
		{"an event stream less readily than HTML", post(helloBody).with("Accept", "text/event-stream;q=0.5, text/html, */*;q=0.1"),
			want{status: 200, contentType: ctJSON, data: helloData}},
		{"an event stream less readily than HTML, no JSON", post(helloBody).with("Accept", "text/event-stream;q=0.5, text/html"),
			want{status: 406, contentType: ctJSON, err: "Accept header allows neither", code: codeBadRequest}},
		{"subscription, no JSON", post(`{"query":"subscription { ticks }"}`).with("Accept", "text/event-stream;q=0.5, text/html"),
			want{status: 200, contentType: stream}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := send(t, s, tt.req)
			if tt.want.contentType != stream {
				check(t, w, tt.want)
				return
			}
			if ct := w.Header().Get("Content-Type"); w.Code != tt.want.status || !strings.HasPrefix(ct, mediaEventStream) {
				t.Fatalf("status %d, Content-Type %q, want %d and an event stream; body %s", w.Code, ct, tt.want.status, w.Body)
			}
		})
	}
}
