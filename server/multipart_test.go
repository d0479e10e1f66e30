package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The Accept headers of Apollo Client's HttpLink for a subscription:
// version 4 (link/http/BaseHttpLink.js puts its multipart range before the
// default Accept), and the form Apollo's protocol description and older
// clients use.
const (
	acceptApollo4      = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
	acceptApolloLegacy = `multipart/mixed;subscriptionSpec="1.0", application/json`
	ctMultipart        = `multipart/mixed;boundary="graphql";subscriptionSpec=1.0`
)

// mpPart is one part of a multipart stream as Apollo Client 4.3.8's
// parser (consumeMultipartBody and readMultipartBody in
// link/http/parseAndCheckHttpResponse.js) hands it on.
type mpPart struct {
	contentType string
	body        string           // the part's JSON as sent
	heartbeat   bool             // {}: Apollo Client skips it
	payload     json.RawMessage  // the result, or null beside transport errors
	errors      []map[string]any // transport errors, beside a null payload
	at          time.Time        // when the client had it
}

// mpClient reads a multipart stream on a goroutine of its own, which ends
// when the stream does (the test's cleanup closes it).
type mpClient struct {
	t      *testing.T
	resp   *http.Response
	opened time.Time // just before the request was sent
	parts  chan mpPart
	ended  chan struct{} // closed when reading has ended
	closed bool          // the close delimiter arrived; read after ended
	err    error         // why reading ended otherwise; read after ended
	raw    bytes.Buffer  // every byte read; read after ended
	start  chan struct{} // closed when the client may read
	once   sync.Once
}

// resume lets a paused client read.
func (c *mpClient) resume() { c.once.Do(func() { close(c.start) }) }

// mpRequest describes a request that opens a multipart stream.
type mpRequest struct {
	method string // GET or POST; "" is POST
	query  string
	vars   map[string]any
	accept string // "" is Apollo Client 4's
	header http.Header
	dial   func(ctx context.Context, network, addr string) (net.Conn, error) // nil: the default
	paused bool                                                              // read nothing until resume is called
}

// openMultipart sends req and returns its response: a stream when the
// status is 200 and the Content-Type multipart, otherwise the response,
// its body in body.
func (r *replica) openMultipart(req mpRequest) (c *mpClient, resp *http.Response, body string) {
	r.t.Helper()
	hreq := newMultipartRequest(r.t, r.http.URL+"/graphql", req)
	transport := &http.Transport{DisableCompression: true}
	if req.dial != nil {
		transport.DialContext = req.dial
	}
	r.t.Cleanup(transport.CloseIdleConnections)
	opened := time.Now()
	resp, err := (&http.Client{Transport: transport}).Do(hreq)
	if err != nil {
		r.t.Fatalf("%s /graphql: %v", hreq.Method, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/mixed") {
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return nil, resp, string(b)
	}
	c = &mpClient{t: r.t, resp: resp, opened: opened, parts: make(chan mpPart, 4096), ended: make(chan struct{}), start: make(chan struct{})}
	if !req.paused {
		c.resume()
	}
	go c.readLoop()
	r.t.Cleanup(func() {
		c.resume()
		_ = resp.Body.Close()
		<-c.ended
	})
	return c, resp, ""
}

// newMultipartRequest builds the request req describes, as Apollo Client's
// HttpLink sends it.
func newMultipartRequest(t *testing.T, target string, req mpRequest) *http.Request {
	t.Helper()
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
		t.Fatal(err)
	}
	accept := req.accept
	if accept == "" {
		accept = acceptApollo4
	}
	hreq.Header.Set("Accept", accept)
	for k, vs := range req.header {
		hreq.Header[k] = vs
	}
	return hreq
}

// apolloBoundary is how Apollo Client 4.3.8 finds the boundary in a
// response's Content-Type (consumeMultipartBody).
var apolloBoundary = regexp.MustCompile(`(?i);\s*boundary=(?:'([^']+)'|"([^"]+)"|([^"'].+?))\s*(?:;|$)`)

// readLoop parses the stream as Apollo Client does until it ends.
func (c *mpClient) readLoop() {
	defer close(c.ended)
	defer close(c.parts)
	<-c.start
	p := newApolloParser(c.resp.Header.Get("Content-Type"))
	chunk := make([]byte, 4096)
	for {
		n, err := c.resp.Body.Read(chunk)
		c.raw.Write(chunk[:n])
		parts, perr := p.feed(string(chunk[:n]))
		for _, part := range parts {
			part.at = time.Now()
			c.parts <- part
		}
		switch {
		case perr != nil:
			c.err = perr
			return
		case p.closed:
			c.closed = true
			return
		case err != nil:
			c.err = fmt.Errorf("premature end of multipart body: %w", err)
			return
		}
	}
}

// apolloParser is a port of Apollo Client 4.3.8's consumeMultipartBody
// and readMultipartBody, kept as close to the JavaScript as Go allows, so
// that what these tests accept, Apollo Client accepts.
type apolloParser struct {
	boundary    string
	buffer      string
	encountered bool
	closed      bool // the close delimiter has been passed
}

func newApolloParser(contentType string) *apolloParser {
	b := "-"
	if m := apolloBoundary.FindStringSubmatch(contentType); m != nil {
		b = m[1] + m[2] + m[3] // one of them matched
	}
	return &apolloParser{boundary: "\r\n--" + b}
}

func (p *apolloParser) passedFinalBoundary() bool {
	return p.encountered && strings.HasPrefix(p.buffer, "--")
}

// feed takes the next chunk of the body and returns the parts it
// completed.
func (p *apolloParser) feed(chunk string) ([]mpPart, error) {
	searchFrom := max(len(p.buffer)-len(p.boundary)+1, 0)
	p.buffer += chunk
	var parts []mpPart
	bi := indexFrom(p.buffer, p.boundary, searchFrom)
	for bi > -1 && !p.passedFinalBoundary() {
		p.encountered = true
		message := p.buffer[:bi]
		p.buffer = p.buffer[bi+len(p.boundary):]
		part, ok, err := apolloPart(message)
		if err != nil {
			return parts, err
		}
		if ok {
			parts = append(parts, part)
		}
		bi = strings.Index(p.buffer, p.boundary)
	}
	p.closed = p.passedFinalBoundary()
	return parts, nil
}

func indexFrom(s, sub string, from int) int {
	if i := strings.Index(s[from:], sub); i >= 0 {
		return from + i
	}
	return -1
}

// apolloPart reads one part as Apollo Client does: headers up to the first
// blank line, then a JSON body; an empty body is no part at all.
func apolloPart(message string) (mpPart, bool, error) {
	// message.slice(0, i) and message.slice(i), JavaScript's slices, for
	// an i of -1 too.
	i := strings.Index(message, "\r\n\r\n")
	var head, body string
	switch {
	case i >= 0:
		head, body = message[:i], message[i:]
	case message != "":
		head, body = message[:len(message)-1], message[len(message)-1:]
	}
	var part mpPart
	for line := range strings.SplitSeq(head, "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "content-type") {
			part.contentType = strings.TrimSpace(value)
		}
	}
	if part.contentType != "" && !strings.Contains(strings.ToLower(part.contentType), "application/json") {
		return part, false, errors.New("unsupported patch content type: application/json is required (Apollo Client's error)")
	}
	if body == "" {
		return part, false, nil
	}
	part.body = strings.TrimSpace(body)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &fields); err != nil {
		return part, false, fmt.Errorf("ServerParseError: %w in part %q", err, body)
	}
	payload, hasPayload := fields["payload"]
	switch {
	case len(fields) == 0:
		part.heartbeat = true
	case !hasPayload:
		return part, false, fmt.Errorf("a part without payload, which Apollo Client passes on as a result: %s", body)
	default:
		part.payload = payload
		if raw, ok := fields["errors"]; ok {
			if err := json.Unmarshal(raw, &part.errors); err != nil {
				return part, false, fmt.Errorf("errors of part %s: %w", body, err)
			}
		}
	}
	return part, true, nil
}

// next returns the next part that is not a heartbeat, failing the test if
// none comes within 5 s.
func (c *mpClient) next() mpPart {
	c.t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case p, ok := <-c.parts:
			if !ok {
				c.t.Fatalf("the stream ended (closed %v, %v) while a part was expected", c.closed, c.err)
			}
			if !p.heartbeat {
				return p
			}
		case <-timer.C:
			c.t.Fatal("no part within 5s")
		}
	}
}

// expectEnd waits for the close delimiter, failing on any part but
// heartbeats first, and on a stream that ends without it.
func (c *mpClient) expectEnd(within time.Duration) {
	c.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case p, ok := <-c.parts:
			if !ok {
				if !c.closed {
					c.t.Fatalf("the stream ended without its close delimiter: %v", c.err)
				}
				return
			}
			if !p.heartbeat {
				c.t.Fatalf("got part %s, want the stream to end", p.body)
			}
		case <-timer.C:
			c.t.Fatalf("the stream did not end within %s", within)
		}
	}
}

// result decodes a part's payload.
func (p mpPart) result(t *testing.T) (data map[string]any, errs []map[string]any, ext map[string]any) {
	t.Helper()
	if len(p.errors) > 0 || string(p.payload) == "null" {
		t.Fatalf("got transport error part %s, want a result", p.body)
	}
	var r struct {
		Data       map[string]any   `json:"data"`
		Errors     []map[string]any `json:"errors"`
		Extensions map[string]any   `json:"extensions"`
	}
	if err := json.Unmarshal(p.payload, &r); err != nil {
		t.Fatalf("payload of %s: %v", p.body, err)
	}
	return r.Data, r.Errors, r.Extensions
}

// posted is the text and cursor of a messagePosted result.
func (p mpPart) posted(t *testing.T) (text, cursor string) {
	t.Helper()
	data, errs, ext := p.result(t)
	if len(errs) > 0 {
		t.Fatalf("errors in %s", p.body)
	}
	cursor, _ = ext["cursor"].(string)
	if cursor == "" {
		t.Fatalf("no extensions.cursor in %s", p.body)
	}
	m, _ := data["messagePosted"].(map[string]any)
	text, _ = m["text"].(string)
	return text, cursor
}

func (p mpPart) postedText(t *testing.T) string {
	t.Helper()
	text, _ := p.posted(t)
	return text
}

// transportCode is the code of a part's single transport error, which
// Apollo Client reports as a CombinedProtocolErrors.
func (p mpPart) transportCode(t *testing.T) string {
	t.Helper()
	if string(p.payload) != "null" || len(p.errors) != 1 {
		t.Fatalf("got %s, want {\"payload\":null,\"errors\":[one error]}", p.body)
	}
	if msg, _ := p.errors[0]["message"].(string); msg == "" {
		t.Fatalf("transport error without a message: %s", p.body)
	}
	ext, _ := p.errors[0]["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

// TestAcceptsMultipart: the multipart transport claims what Apollo's
// clients send for a subscription, and nothing else.
func TestAcceptsMultipart(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{acceptApollo4, true},
		{acceptApolloLegacy, true},
		{`multipart/mixed;boundary="graphql";subscriptionSpec=1.0, application/json`, true},
		{`multipart/mixed; subscriptionspec="1.0"`, true},
		{`application/json, multipart/mixed;subscriptionSpec=1.0;q=0.5`, true},
		{`multipart/mixed;deferSpec=20220824, application/json`, false}, // @defer, not a subscription
		{`multipart/mixed, application/json`, false},
		{`multipart/mixed;subscriptionSpec=2.0`, false},
		{`multipart/mixed;subscriptionSpec=1.0;q=0`, false},
		{`text/event-stream, multipart/mixed;subscriptionSpec=1.0;q=0.5`, false},
		{`text/event-stream`, false},
		{`application/graphql-response+json, application/json;q=0.9`, false},
		{``, false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(http.MethodPost, "/graphql", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		if got := acceptsMultipart(r); got != tt.want {
			t.Errorf("acceptsMultipart(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// partHead is the head of every part Herald writes.
const partHead = "Content-Type: application/json; charset=utf-8\r\n\r\n"

// TestMultipartFormat: the exact bytes of each piece of a stream, and a
// stream made of them read by Apollo Client's parser (a port) and by an
// RFC 2046 parser (Go's mime/multipart) alike.
func TestMultipartFormat(t *testing.T) {
	f := multipartFormat{}
	result := &payload{bytes: []byte(`{"data":{"n":1},"extensions":{"cursor":"c1"}}`), cursor: "c1"}
	slow := &gqlerror.Error{Message: "slow", Extensions: map[string]any{"code": codeSlowConsumer}}
	pieces := []struct {
		name string
		got  []byte
		want string
	}{
		{"content type", []byte(f.contentType()), ctMultipart},
		{"preamble", f.preamble(), "\r\n--graphql\r\n"},
		{"result", appendNext(f, nil, nil, result), partHead + `{"payload":{"data":{"n":1},"extensions":{"cursor":"c1"}}}` + "\r\n--graphql\r\n"},
		{"heartbeat", f.keepalive(), partHead + "{}\r\n--graphql\r\n"},
		{"completion", f.appendEnd(nil, nil, nil), partHead + "{}\r\n--graphql--\r\n"},
		{"transport error", f.appendEnd(nil, nil, slow),
			partHead + `{"payload":null,"errors":[{"message":"slow","extensions":{"code":"SLOW_CONSUMER"}}]}` + "\r\n--graphql--\r\n"},
	}
	for _, p := range pieces {
		if string(p.got) != p.want {
			t.Errorf("%s:\n got %q\nwant %q", p.name, p.got, p.want)
		}
	}
	goAway := string(f.appendGoAway(nil))
	if !strings.HasPrefix(goAway, partHead+`{"payload":null,"errors":[{"message":"the server is shutting down;`) ||
		!strings.HasSuffix(goAway, `"extensions":{"code":"SHUTTING_DOWN"}}]}`+"\r\n--graphql--\r\n") {
		t.Errorf("go away: %q", goAway)
	}

	var stream []byte
	stream = append(stream, f.preamble()...)
	stream = appendNext(f, stream, nil, result)
	stream = append(stream, f.keepalive()...)
	stream = appendNext(f, stream, nil, result)
	stream = slices.Clip(stream) // each end appends to a copy
	ended := f.appendEnd(stream, nil, nil)
	failed := f.appendEnd(stream, nil, slow)
	for _, s := range []struct {
		name  string
		bytes []byte
		last  string
	}{{"completed", ended, "{}"}, {"failed", failed, `{"payload":null,"errors":[{"message":"slow","extensions":{"code":"SLOW_CONSUMER"}}]}`}} {
		bodies := checkMultipart(t, f.contentType(), s.bytes)
		want := []string{`{"payload":{"data":{"n":1},"extensions":{"cursor":"c1"}}}`, "{}",
			`{"payload":{"data":{"n":1},"extensions":{"cursor":"c1"}}}`, s.last}
		if fmt.Sprint(bodies) != fmt.Sprint(want) {
			t.Errorf("%s stream: parts %q, want %q", s.name, bodies, want)
		}
	}
}

// checkMultipart reads a whole stream both as Apollo Client does, in
// every split into two chunks, and as RFC 2046 does, checks they agree and
// that it ends with its close delimiter, and returns its parts' bodies.
func checkMultipart(t *testing.T, contentType string, stream []byte) []string {
	t.Helper()
	var apollo []string
	for cut := range len(stream) + 1 {
		p := newApolloParser(contentType)
		var bodies []string
		for _, chunk := range []string{string(stream[:cut]), string(stream[cut:])} {
			parts, err := p.feed(chunk)
			if err != nil {
				t.Fatalf("Apollo's parser, cut at %d: %v", cut, err)
			}
			for _, part := range parts {
				bodies = append(bodies, part.body)
			}
		}
		if !p.closed {
			t.Fatalf("Apollo's parser, cut at %d: did not pass the close delimiter", cut)
		}
		if cut > 0 && fmt.Sprint(bodies) != fmt.Sprint(apollo) {
			t.Fatalf("Apollo's parser, cut at %d: %q, but %q uncut", cut, bodies, apollo)
		}
		apollo = bodies
	}

	_, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(bytes.NewReader(stream), params["boundary"])
	var rfc []string
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("mime/multipart: %v", err)
		}
		if ct := part.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("mime/multipart: part Content-Type %q", ct)
		}
		b, err := io.ReadAll(part)
		if err != nil {
			t.Fatalf("mime/multipart: %v", err)
		}
		rfc = append(rfc, string(b))
	}
	if fmt.Sprint(rfc) != fmt.Sprint(apollo) {
		t.Fatalf("mime/multipart read %q, Apollo's parser %q", rfc, apollo)
	}
	return apollo
}

// TestMultipartFraming: a subscription over multipart, whole, byte for
// byte: the fake schema's subscription yields one result and completes.
func TestMultipartFraming(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, accept := range []string{acceptApollo4, acceptApolloLegacy} {
		w := send(t, s, post(`{"query":"subscription { ticks }"}`).with("Accept", accept))
		want := "\r\n--graphql\r\n" +
			partHead + `{"payload":{"data":{"ticks":null}}}` + "\r\n--graphql\r\n" +
			partHead + "{}\r\n--graphql--\r\n"
		if w.Code != http.StatusOK || w.Body.String() != want {
			t.Fatalf("Accept %s: %d\n got %q\nwant %q", accept, w.Code, w.Body.String(), want)
		}
		for k, v := range map[string]string{"Content-Type": ctMultipart, "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("Accept %s: %s = %q, want %q", accept, k, got, v)
			}
		}
		checkMultipart(t, w.Header().Get("Content-Type"), w.Body.Bytes())
	}
}

// TestMultipartAnswersAsJSON: with Apollo's multipart Accept, queries and
// mutations are answered as on any POST (Apollo Client sends that Accept
// only with subscriptions), and so is everything wrong with a request
// before a subscription starts: Apollo Client 4 (which accepts
// graphql-response+json) reads a 4xx with that media type as GraphQL
// errors, older clients get application/json with 200.
func TestMultipartAnswersAsJSON(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) {
		o.Limits.MaxVariablesBytes = 64
		o.Limits.MutationRate = 1
		o.Limits.MutationBurst = 1
	})
	apollo := func(q request) request { return q.with("Accept", acceptApollo4) }
	legacy := func(q request) request { return q.with("Accept", acceptApolloLegacy) }
	only := func(q request) request { return q.with("Accept", "multipart/mixed;subscriptionSpec=1.0") }
	tests := []struct {
		name string
		req  request
		want want
	}{
		{"query", apollo(post(helloBody)), want{status: 200, contentType: ctResponse, data: helloData}},
		{"query, legacy Accept", legacy(post(helloBody)), want{status: 200, contentType: ctJSON, data: helloData}},
		{"GET query", apollo(get("query", helloQuery, "variables", `{"name":"Ada"}`)), want{status: 200, contentType: ctResponse, data: helloData}},
		{"mutation", apollo(post(`{"query":"mutation { bump }"}`)).with("X-Herald-User", "ann"),
			want{status: 200, contentType: ctResponse, data: `{"bump":1}`}},
		{"mutation beyond the rate", apollo(post(`{"query":"mutation { bump }"}`)).with("X-Herald-User", "ann"),
			want{status: 429, contentType: ctResponse, err: "too many mutations", code: codeRateLimited}},
		{"GET mutation", apollo(get("query", "mutation { bump }")),
			want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
		{"query accepting only multipart", only(post(helloBody)), want{status: 406, contentType: ctJSON, err: "Accept header allows neither", code: codeBadRequest}},
		{"validation error", apollo(post(`{"query":"subscription { nope }"}`)),
			want{status: 400, contentType: ctResponse, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"validation error, legacy Accept", legacy(post(`{"query":"subscription { nope }"}`)),
			want{status: 200, contentType: ctJSON, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"validation error accepting only multipart", only(post(`{"query":"subscription { nope }"}`)),
			want{status: 200, contentType: ctJSON, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
		{"parse error", apollo(post(`{"query":"subscription {"}`)), want{status: 400, contentType: ctResponse, err: "Expected", code: "GRAPHQL_PARSE_FAILED"}},
		{"malformed JSON", apollo(post(`{"query":`)), want{status: 400, contentType: ctResponse, err: "not valid JSON", code: codeBadRequest}},
		{"variables over the limit", apollo(post(`{"query":"subscription { ticks }","variables":{"pad":"` + strings.Repeat("x", 80) + `"}}`)),
			want{status: 413, contentType: ctResponse, err: "limit of 64", code: codeBadRequest}},
		{"bad credentials", apollo(post(`{"query":"subscription { ticks }"}`)).with("X-Herald-User", "a\x01b"),
			want{status: 401, contentType: ctResponse, code: "UNAUTHENTICATED", err: "control"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, send(t, s, tt.req), tt.want)
		})
	}
}

// TestMultipartSubscription: over POST (as Apollo Client sends it) and
// GET, with either form of Accept, a subscription streams one part per
// result, in order, each with its cursor; the stream counts in
// herald_http_streams{transport="multipart"} while it is open.
func TestMultipartSubscription(t *testing.T) {
	r := newReplica(t, nil)
	gauge := r.server.ws.metrics.streams.WithLabelValues("multipart")
	tests := []struct{ name, method, accept string }{
		{"POST", http.MethodPost, acceptApollo4},
		{"POST legacy Accept", http.MethodPost, acceptApolloLegacy},
		{"GET", http.MethodGet, acceptApollo4},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			room := r.room(fmt.Sprint("multipart-", i))
			c, resp, body := r.openMultipart(mpRequest{method: tt.method, accept: tt.accept, query: postedSub, vars: map[string]any{"r": room}})
			if c == nil {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if h := resp.Header; h.Get("Content-Type") != ctMultipart || h.Get("Cache-Control") != "no-cache, no-transform" || h.Get("X-Accel-Buffering") != "no" {
				t.Errorf("headers %v", h)
			}
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			if n := testutil.ToFloat64(gauge); n != 1 {
				t.Errorf("herald_http_streams{transport=multipart} = %v while open, want 1", n)
			}
			for i := range 3 {
				r.post(room, "a", fmt.Sprint("m", i))
			}
			cursors := map[string]bool{}
			for i := range 3 {
				text, cursor := c.next().posted(t)
				if want := fmt.Sprint("m", i); text != want {
					t.Fatalf("part %d: %q, want %q", i, text, want)
				}
				if cursors[cursor] {
					t.Fatalf("cursor %q repeats", cursor)
				}
				cursors[cursor] = true
			}
			_ = c.resp.Body.Close()
			waitFor(t, "the stream to leave its execution", func() bool {
				return r.members() == 0 && r.openSockets() == 0 && testutil.ToFloat64(gauge) == 0
			})
		})
	}
}

// TestMultipartCompletes: a subscription that ends by itself (here, on a
// room that does not exist, with its error) ends the stream with the
// close delimiter after its last result.
func TestMultipartCompletes(t *testing.T) {
	r := newReplica(t, nil)
	c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": "no-such-room"}})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, errs, _ := c.next().result(t)
	if len(errs) != 1 {
		t.Fatalf("errors %v, want the resolver's one error", errs)
	}
	if ext, _ := errs[0]["extensions"].(map[string]any); ext["code"] != "NOT_FOUND" {
		t.Fatalf("errors %v, want NOT_FOUND", errs)
	}
	c.expectEnd(5 * time.Second)
	checkMultipart(t, resp.Header.Get("Content-Type"), c.raw.Bytes())
}

// TestMultipartSharesExecution: a WebSocket, an SSE and a multipart
// subscriber of the same subscription share one execution, and each gets
// every event.
func TestMultipartSharesExecution(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("shared")
	ws := r.dialTransport("w")
	ws.subscribe("subscribe", "1", postedSub, map[string]any{"r": room})
	sse, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: map[string]any{"r": room}})
	if sse == nil {
		t.Fatalf("SSE: status %d: %s", status, body)
	}
	mp, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if mp == nil {
		t.Fatalf("multipart: status %d: %s", resp.StatusCode, body)
	}
	waitFor(t, "the three subscriptions", func() bool { return r.members() == 3 })
	if n := r.server.execs.count(); n != 1 {
		t.Fatalf("%d executions, want 1 shared by the three transports", n)
	}
	r.post(room, "a", "one")
	if got := mp.next().postedText(t); got != "one" {
		t.Errorf("multipart got %q", got)
	}
	if got := sse.next().postedText(t); got != "one" {
		t.Errorf("SSE got %q", got)
	}
	var got struct{ MessagePosted struct{ Text string } }
	ws.next().data(t, &got)
	if got.MessagePosted.Text != "one" {
		t.Errorf("socket got %q", got.MessagePosted.Text)
	}
}

// TestMultipartResumes: a subscription passing a cursor as after replays
// what came after it, then continues live, with no gap and no repeat.
func TestMultipartResumes(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("resume")
	c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.post(room, "a", "m0")
	r.post(room, "a", "m1")
	c.next()
	text, cursor := c.next().posted(t)
	if text != "m1" {
		t.Fatalf("second part %q", text)
	}
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to go", func() bool { return r.members() == 0 })
	r.post(room, "a", "m2")
	r.post(room, "a", "m3")

	c2, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room, "after": cursor}})
	if c2 == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
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
}

// TestMultipartHeartbeatInterval: a heartbeat at least every 10 s, more
// often when PingInterval asks for it.
func TestMultipartHeartbeatInterval(t *testing.T) {
	for _, tt := range []struct{ ping, want time.Duration }{
		{15 * time.Second, 10 * time.Second}, // the default PingInterval
		{10 * time.Second, 10 * time.Second},
		{time.Minute, 10 * time.Second},
		{5 * time.Second, 5 * time.Second},
		{50 * time.Millisecond, 50 * time.Millisecond},
	} {
		s, _ := newTestServer(t, func(o *Options) { o.PingInterval = tt.ping })
		mp, sse := s.multipart, s.sse
		if mp.cfg.keepAlive != tt.want || sse.cfg.keepAlive != tt.ping {
			t.Errorf("PingInterval %s: multipart heartbeat every %s, SSE comment every %s; want %s and %s",
				tt.ping, mp.cfg.keepAlive, sse.cfg.keepAlive, tt.want, tt.ping)
		}
	}
}

// TestMultipartHeartbeats: an idle stream gets a {} part every
// heartbeat interval (here PingInterval, 50 ms), never more often.
func TestMultipartHeartbeats(t *testing.T) {
	const every = 50 * time.Millisecond
	r := newReplica(t, func(o *Options) { o.PingInterval = every })
	room := r.room("idle")
	c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	deadline := time.After(5 * time.Second)
	for beats := 0; beats < 4; {
		select {
		case p, ok := <-c.parts:
			if !ok {
				t.Fatalf("stream ended: %v", c.err)
			}
			if !p.heartbeat || p.body != "{}" || p.contentType != "application/json; charset=utf-8" {
				t.Fatalf("unexpected part %q (%s)", p.body, p.contentType)
			}
			beats++
			// The k-th heartbeat comes a whole interval after the one
			// before, so no sooner than k intervals after the request.
			if since := p.at.Sub(c.opened); since < time.Duration(beats)*every {
				t.Fatalf("heartbeat %d came %s after the request, before %d intervals", beats, since, beats)
			}
		case <-deadline:
			t.Fatal("fewer than 4 heartbeats in 5s")
		}
	}
}

// TestMultipartDrain: a drain refuses new streams with 503 and ends the
// open ones, oldest first, spread over its window, each with a
// SHUTTING_DOWN error and the close delimiter, so that Apollo Client
// reports why rather than a body cut short.
func TestMultipartDrain(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = time.Minute })
	room := r.room("drain")
	const n = 3
	const window = 600 * time.Millisecond
	clients := make([]*mpClient, n)
	for i := range clients {
		c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
		if c == nil {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		clients[i] = c
		waitFor(t, "the subscription", func() bool { return r.members() == i+1 })
	}
	r.server.StartDrain()
	_, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != ctJSON || !strings.Contains(body, "shutting down") {
		t.Fatalf("during a drain: %d %s %s, want 503 as application/json", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), window+10*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.server.Drain(ctx, window); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	var last time.Time
	for i, c := range clients {
		p := c.next()
		if code := p.transportCode(t); code != codeShuttingDown {
			t.Fatalf("stream %d: code %q, want %s", i, code, codeShuttingDown)
		}
		c.expectEnd(5 * time.Second)
		if slot := start.Add(drainOffset(i, n, window)); p.at.Before(slot) {
			t.Errorf("stream %d ended %s before its slot", i, slot.Sub(p.at))
		}
		if p.at.Before(last) {
			t.Errorf("stream %d ended before the older stream %d", i, i-1)
		}
		last = p.at
	}
}

// TestMultipartCountsTowardMaxConnections: multipart streams, event
// streams and sockets share the replica's connection limit.
func TestMultipartCountsTowardMaxConnections(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxConnections = 1 })
	room := r.room("full")
	c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	_, resp, body = r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "limit of 1") {
		t.Fatalf("second stream: %d %v %s, want 503 with Retry-After", resp.StatusCode, resp.Header, body)
	}
	if _, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}}); status != http.StatusServiceUnavailable {
		t.Fatalf("an event stream: %d %s, want 503", status, body)
	}
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	if _, resp, err := d.Dial(r.wsURL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a socket while a stream holds the limit: err %v, response %v; want 503", err, resp)
	}
	// A query with the same Accept is no stream: it is served.
	if w := send(t, r.server, post(`{"query":"{ __typename }"}`).with("Accept", acceptApollo4)); w.Code != http.StatusOK {
		t.Fatalf("a query while full: %d %s", w.Code, w.Body)
	}
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to give its place back", func() bool { return r.placesTaken() == 0 })
	r.dialTransport("now-fits")
}

// TestMultipartExpiry: a stream whose credentials expire ends with an
// UNAUTHENTICATED transport error and the close delimiter.
func TestMultipartExpiry(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Authenticator = expiringAuth{ttl: 300 * time.Millisecond} })
	room := r.room("expiry")
	c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room},
		header: http.Header{"X-Herald-User": {"ann"}}})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if code := c.next().transportCode(t); code != "UNAUTHENTICATED" {
		t.Fatalf("code %q, want UNAUTHENTICATED", code)
	}
	c.expectEnd(5 * time.Second)
	waitFor(t, "the stream to go", func() bool { return r.members() == 0 && r.openSockets() == 0 })
}

// TestMultipartJWT: a stream is authenticated by the authenticator's
// FromRequest, from the Authorization header or the cookie; bad
// credentials are refused before any stream opens.
func TestMultipartJWT(t *testing.T) {
	r, sign := jwtReplica(t)
	room := r.room("jwt")
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"bearer", http.Header{"Authorization": {"Bearer " + sign("alice", time.Minute)}}, http.StatusOK},
		{"cookie", http.Header{"Cookie": {"herald_token=" + sign("carol", time.Minute)}}, http.StatusOK},
		{"expired bearer", http.Header{"Authorization": {"Bearer " + sign("alice", -time.Minute)}}, http.StatusUnauthorized},
		{"forged cookie", http.Header{"Cookie": {"herald_token=forged"}}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}, header: tt.header})
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if c == nil {
				var refusal map[string]any
				_ = json.Unmarshal([]byte(body), &refusal)
				if resp.Header.Get("WWW-Authenticate") == "" || errorCode(refusal) != "UNAUTHENTICATED" {
					t.Fatalf("refusal %v %s, want WWW-Authenticate and UNAUTHENTICATED", resp.Header, body)
				}
				return
			}
			_ = c.resp.Body.Close()
			waitFor(t, "the stream to go", func() bool { return r.openSockets() == 0 })
		})
	}
}

// TestMultipartSlowConsumerEndsAlone: a stream that stops reading falls
// behind and is ended with a SLOW_CONSUMER transport error once it reads
// again, after the results it had, in order; a WebSocket subscriber of the
// same room keeps every event meanwhile.
func TestMultipartSlowConsumerEndsAlone(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.QueueMessages = 16
		o.QueueBytes = 1 << 20
	})
	room := r.room("slow")
	slow, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}, dial: tinyReceiveBuffer, paused: true})
	if slow == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	fast := r.dialTransport("fast")
	fast.subscribe("subscribe", "1", postedSub, map[string]any{"r": room})
	waitFor(t, "both subscriptions", func() bool { return r.members() == 2 })

	fastReader := readPosted(t, fast)
	posted := postUntilSlowClose(t, r, room)
	slow.resume()
	n := 0
	for {
		p := slow.next()
		if string(p.payload) == "null" {
			if code := p.transportCode(t); code != codeSlowConsumer {
				t.Fatalf("error code %q, want %s", code, codeSlowConsumer)
			}
			break
		}
		if got, want := p.postedText(t), slowText(n); got != want {
			t.Fatalf("stream part %d out of order", n)
		}
		n++
	}
	slow.expectEnd(5 * time.Second)
	if n >= posted {
		t.Fatalf("the slow stream got all %d events", n)
	}
	fastReader.expectAll(t, posted)
}
