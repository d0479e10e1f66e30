package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

const liveQuery = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`

// opError is the first GraphQL error of an error frame.
type opError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func firstError(t *testing.T, f frame) opError {
	t.Helper()
	var errs []opError
	if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("error frame %s: want a list of GraphQL errors (%v)", f.raw, err)
	}
	return errs[0]
}

// graphqlPost sends a GraphQL request over HTTP as user and returns the
// status, headers and decoded body.
func (r *replica) graphqlPost(user, query string, vars map[string]any, header http.Header) (int, http.Header, map[string]any) {
	r.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set(auth.DevHeader, user)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := doBounded(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			r.t.Fatalf("response %d %q is not JSON: %v", resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func errorCode(body map[string]any) string {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
	code, _ := ext["code"].(string)
	return code
}

// stillServes shows the replica still delivers to a socket subscribed
// before whatever a test did.
func stillServes(t *testing.T, r *replica, c *wsClient, room, id string) {
	t.Helper()
	r.post(room, "u1", "still serving")
	f := c.expectType("next")
	if f.ID != id || !strings.Contains(string(f.Payload), "still serving") {
		t.Fatalf("got %s, want the post on subscription %s", f.raw, id)
	}
}

func TestConnectionLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxConnections = 2 })
	room := r.room("full")
	a := r.dialTransport("a")
	a.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	b := r.dialTransport("b")
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })

	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	_, resp, err := d.Dial(r.wsURL, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third socket: %v, %v; want HTTP 503 before the upgrade", err, resp)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "limit of 2 WebSocket connections") {
		t.Errorf("503 body %s does not say which limit", body)
	}
	if !strings.Contains(string(body), `"extensions":{"code":"UNAVAILABLE"}`) {
		t.Errorf("503 body %s does not say UNAVAILABLE", body)
	}
	stillServes(t, r, a, room, "1")

	// A socket that goes frees its place.
	_ = b.conn.Close()
	waitFor(t, "the closed socket to give its place back", func() bool { return r.placesTaken() == 1 })
	r.dialTransport("c")
}

func TestOperationLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxOperations = 2 })
	room := r.room("ops")
	c := r.dialTransport("u")
	c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	c.subscribe("subscribe", "2", liveQuery, map[string]any{"r": room})
	c.subscribe("subscribe", "3", liveQuery, map[string]any{"r": room})
	f := c.expectType("error")
	if e := firstError(t, f); f.ID != "3" || e.Extensions["code"] != codeLimitExceeded || !strings.Contains(e.Message, "2 operations open") {
		t.Fatalf("third operation: %s; want LIMIT_EXCEEDED naming the limit", f.raw)
	}
	waitFor(t, "two subscriptions", func() bool { return r.members() == 2 })
	// Completing one makes room for another.
	c.send(map[string]any{"type": "complete", "id": "1"})
	waitFor(t, "the completed one to go", func() bool { return r.members() == 1 })
	c.subscribe("subscribe", "4", liveQuery, map[string]any{"r": room})
	waitFor(t, "the new one", func() bool { return r.members() == 2 })
	stillServes(t, r, c, room, "2")
}

func TestSubscribeRateLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.SubscribeRate = 1
		o.Limits.SubscribeBurst = 2
	})
	room := r.room("rate")
	c := r.dialTransport("u")
	other := r.dialTransport("v")
	for _, id := range []string{"1", "2", "3"} {
		c.subscribe("subscribe", id, liveQuery, map[string]any{"r": room})
	}
	f := c.expectType("error")
	e := firstError(t, f)
	retry, _ := e.Extensions["retryAfter"].(float64)
	if f.ID != "3" || e.Extensions["code"] != codeRateLimited || retry <= 0 || retry > 1 {
		t.Fatalf("third subscribe within a second: %s; want RATE_LIMITED with 0 < retryAfter ≤ 1", f.raw)
	}
	// Another socket has its own allowance.
	other.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	waitFor(t, "three subscriptions", func() bool { return r.members() == 3 })
	// After the hint, the socket may subscribe again.
	time.Sleep(time.Duration(retry * float64(time.Second)))
	c.subscribe("subscribe", "4", liveQuery, map[string]any{"r": room})
	waitFor(t, "the retried subscription", func() bool { return r.members() == 4 })
}

func TestMutationRateLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MutationRate = 1
		o.Limits.MutationBurst = 2
	})
	room := r.room("posts")
	const post = `mutation($r: ID!) { postMessage(roomId: $r, text: "hi") { id } }`
	vars := map[string]any{"r": room}
	for i := range 2 {
		if status, _, body := r.graphqlPost("alice", post, vars, nil); status != http.StatusOK || errorCode(body) != "" {
			t.Fatalf("post %d within the burst: %d %v", i, status, body)
		}
	}
	status, header, body := r.graphqlPost("alice", post, vars, nil)
	if status != http.StatusTooManyRequests || header.Get("Retry-After") != "1" || errorCode(body) != codeRateLimited {
		t.Fatalf("third post: %d Retry-After %q %v; want 429, Retry-After 1 and RATE_LIMITED", status, header.Get("Retry-After"), body)
	}
	// Other users are not affected.
	if status, _, body := r.graphqlPost("bob", post, vars, nil); status != http.StatusOK || errorCode(body) != "" {
		t.Fatalf("bob's post: %d %v", status, body)
	}
	// The same identity over a socket shares the allowance.
	c := r.dialTransport("alice")
	c.subscribe("subscribe", "m", post, vars)
	f := c.expectType("error")
	if e := firstError(t, f); e.Extensions["code"] != codeRateLimited {
		t.Fatalf("alice's mutation over a socket: %s; want RATE_LIMITED", f.raw)
	}
	// Queries are not mutations.
	if status, _, body := r.graphqlPost("alice", `{ rooms(first: 1) { edges { node { id } } } }`, nil, nil); status != http.StatusOK || errorCode(body) != "" {
		t.Fatalf("alice's query: %d %v", status, body)
	}
}

func TestIdentityLimiterForgetsRefilledBuckets(t *testing.T) {
	l := newIdentityLimiter(10, 10)
	now := time.Now()
	for i := range 1000 {
		l.allow(fmt.Sprint("user", i), now)
	}
	if n := l.size(); n != 1000 {
		t.Fatalf("%d identities tracked, want 1000", n)
	}
	l.allow("late", now.Add(2*time.Minute)) // everyone else has refilled
	if n := l.size(); n != 1 {
		t.Fatalf("%d identities tracked after they all refilled, want 1", n)
	}
}

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	start := time.Now()
	for i := range 3 {
		if ok, _ := b.take(start, 2, 3); !ok {
			t.Fatalf("take %d of a burst of 3 refused", i)
		}
	}
	ok, wait := b.take(start, 2, 3)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth take: %v, wait %v; want refused, 500ms", ok, wait)
	}
	if ok, _ := b.take(start.Add(500*time.Millisecond), 2, 3); !ok {
		t.Fatal("take after the wait refused")
	}
}

func TestDepthAndComplexityLimits(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxDepth = 4
		o.Limits.MaxComplexity = 30
	})
	room := r.room("deep")
	deep := `query($r: ID!) { room(id: $r) { messages(first: 1) { edges { node { id } } } } }`
	var sb strings.Builder
	sb.WriteString("{ ")
	for i := range 40 {
		fmt.Fprintf(&sb, "f%d: __typename ", i)
	}
	sb.WriteString("}")
	wide := sb.String()
	fine := `query($r: ID!) { room(id: $r) { name } }`
	tests := []struct {
		name, query, code string
	}{
		{"deep", deep, codeDepthExceeded},
		{"wide", wide, codeComplexityExceeded},
		{"within both", fine, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, body := r.forTest(t).graphqlPost("u", tt.query, map[string]any{"r": room}, nil)
			if got := errorCode(body); got != tt.code {
				t.Fatalf("code %q, want %q: %v", got, tt.code, body)
			}
		})
	}
	// Over a socket the operation fails alone.
	c := r.dialTransport("u")
	c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	c.subscribe("subscribe", "2", deep, map[string]any{"r": room})
	if f := c.expectType("error"); f.ID != "2" || firstError(t, f).Extensions["code"] != codeDepthExceeded {
		t.Fatalf("deep query over a socket: %s", f.raw)
	}
	stillServes(t, r, c, room, "1")
}

// TestDepthOfFragmentBomb: fragments that spread others many times expand
// exponentially, but their depth is computed once per fragment.
func TestDepthOfFragmentBomb(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("query { ...F0 }\n")
	const levels = 40
	for i := range levels {
		fmt.Fprintf(&sb, "fragment F%d on Query { ...F%d ...F%d }\n", i, i+1, i+1)
	}
	fmt.Fprintf(&sb, "fragment F%d on Query { __typename }\n", levels)
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxDepth = 5
		o.Limits.MaxComplexity = 1000
	})
	start := time.Now()
	status, _, body := r.graphqlPost("u", sb.String(), nil, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a fragment bomb took %v", took)
	}
	if errorCode(body) != codeComplexityExceeded {
		t.Fatalf("fragment bomb: %d %v; want COMPLEXITY_LIMIT_EXCEEDED", status, body)
	}
}

func TestVariablesLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxVariablesBytes = 200 })
	room := r.room("vars")
	big := map[string]any{"r": room, "pad": strings.Repeat("x", 300)}
	status, _, body := r.graphqlPost("u", `query($r: ID!) { room(id: $r) { name } }`, big, nil)
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(body), "limit of 200") {
		t.Fatalf("HTTP with 300-byte variables: %d %v; want 413 naming the limit", status, body)
	}
	c := r.dialTransport("u")
	c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	c.subscribe("subscribe", "2", liveQuery, big)
	if f := c.expectType("error"); f.ID != "2" || firstError(t, f).Extensions["code"] != codeLimitExceeded {
		t.Fatalf("socket with 300-byte variables: %s", f.raw)
	}
	stillServes(t, r, c, room, "1")
}

func TestJSONSize(t *testing.T) {
	for _, v := range []map[string]any{
		{},
		{"a": "b"},
		{"a": []any{json.Number("1"), true, false, nil, "x"}, "b": map[string]any{"c": json.Number("-2.5e3")}},
	} {
		raw, _ := json.Marshal(v)
		if got := jsonSize(v, 1<<20); got != len(raw) {
			t.Errorf("jsonSize(%s) = %d, want %d", raw, got, len(raw))
		}
	}
}

func TestOriginCheck(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com", "https://*.example.org"} })
	room := r.room("origins")
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},                              // not a browser
		{"https://app.example.com", true},       // listed
		{"https://APP.example.com:443", true},   // same origin, spelled otherwise
		{"https://a.b.example.org", true},       // wildcard subdomain
		{"https://evil.example", false},         // not listed
		{"http://app.example.com", false},       // other scheme
		{"https://example.org", false},          // the wildcard needs a subdomain
		{"https://app.example.com.evil", false}, // suffix trick
		{"null", false},                         // sandboxed documents
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
			conn, resp, err := d.Dial(r.wsURL, h)
			if tt.ok {
				if err != nil {
					t.Fatalf("upgrade from %q refused: %v", tt.origin, err)
				}
				c := &wsClient{t: t, conn: conn}
				defer conn.Close()
				c.init("u")
				c.expectType("connection_ack")
				c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
				waitFor(t, "the subscription", func() bool { return r.members() == 1 })
				stillServes(t, r.forTest(t), c, room, "1")
				c.send(map[string]any{"type": "complete", "id": "1"})
				waitFor(t, "the completion", func() bool { return r.members() == 0 })
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("upgrade from %q was allowed", tt.origin)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("upgrade from %q: %v, %v; want 403", tt.origin, err, resp)
			}
			status, _, body := r.forTest(t).graphqlPost("u", `{ __typename }`, nil, h)
			if status != http.StatusForbidden || !strings.Contains(fmt.Sprint(body), "allowed-origins") ||
				!strings.Contains(fmt.Sprint(body), "code:FORBIDDEN") {
				t.Fatalf("POST from %q: %d %v; want 403 naming --allowed-origins, code FORBIDDEN", tt.origin, status, body)
			}
		})
	}
}

func TestCORS(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com"} })
	req, _ := http.NewRequest(http.MethodOptions, r.http.URL+"/graphql", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type, authorization")
	resp, err := doBounded(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Headers":     "content-type, authorization",
	}
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d, want 204", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	for _, method := range []string{"POST", "PUT", "DELETE"} { // PUT, DELETE: graphql-sse's single connection mode
		if !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), method) {
			t.Errorf("preflight allows methods %q, want %s among them", resp.Header.Get("Access-Control-Allow-Methods"), method)
		}
	}
	status, header, _ := r.graphqlPost("", `{ __typename }`, nil, http.Header{"Origin": {"https://app.example.com"}})
	if status != http.StatusOK || header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || header.Get("Vary") != "Origin" {
		t.Fatalf("cross-site POST: %d, headers %v", status, header)
	}
	// Same-origin and non-browser requests get no CORS headers.
	_, header, _ = r.graphqlPost("", `{ __typename }`, nil, nil)
	if header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("CORS headers without an Origin: %v", header)
	}
}

func TestOriginPolicyConfig(t *testing.T) {
	for _, bad := range []string{"example.com", "ftp://x.example", "https://*", "https://a.*.example", "https://x.example/path", "https://u@x.example",
		// Browsers send a host in ASCII: a Unicode entry would never match.
		"https://bücher.example", "https://*.bücher.example"} {
		if _, err := newOriginPolicy([]string{bad}); err == nil {
			t.Errorf("allowed origin %q accepted", bad)
		}
	}
	if _, err := newOriginPolicy([]string{"*", "https://app.example.com", "https://*.example.org", " "}); err != nil {
		t.Errorf("a valid allow-list refused: %v", err)
	}
}

// TestOriginPolicyMatches: an origin is scheme, host and port (RFC 6454),
// and a browser never writes the scheme's default port. A wildcard entry
// used to ignore the origin's port (https://*.example.org admitted a page
// on any port of any subdomain) and, given a port, to match nothing.
func TestOriginPolicyMatches(t *testing.T) {
	tests := []struct {
		entry, origin string
		ok            bool
	}{
		{"https://app.example.org", "https://app.example.org", true},
		{"https://app.example.org", "https://app.example.org:8443", false},
		{"https://app.example.org:443", "https://app.example.org", true},
		{"https://*.example.org", "https://a.example.org", true},
		{"https://*.example.org", "https://a.b.example.org", true},
		{"https://*.example.org", "https://a.example.org:443", true},
		{"https://*.example.org", "https://a.example.org:8443", false},
		{"https://*.example.org", "http://a.example.org", false},
		{"https://*.example.org", "https://example.org", false},
		{"https://*.example.org", "https://a.example.org.evil.com", false},
		{"https://*.example.org:8443", "https://a.example.org:8443", true},
		{"https://*.example.org:8443", "https://a.example.org", false},
		{"https://*.example.org:443", "https://a.example.org", true},
		{"http://*.example.org:80", "http://a.example.org", true},
		{"http://*.example.org", "http://a.example.org:8080", false},
		{"https://*.xn--bcher-kva.example", "https://www.xn--bcher-kva.example", true},
	}
	for _, tt := range tests {
		p, err := newOriginPolicy([]string{tt.entry})
		if err != nil {
			t.Fatalf("entry %q: %v", tt.entry, err)
		}
		if got := p.allowsOrigin(tt.origin, "herald.internal"); got != tt.ok {
			t.Errorf("allowed origins [%s], origin %s: allowed %v, want %v", tt.entry, tt.origin, got, tt.ok)
		}
	}
}

// TestSameOriginIgnoresDefaultPort: a Host header may name the scheme's
// default port (a proxy's "Host: $host:$server_port"), which browsers
// leave out of Origin; the page is still same-origin, needs no allow-list
// entry and no CORS headers.
func TestSameOriginIgnoresDefaultPort(t *testing.T) {
	p, err := newOriginPolicy(nil) // same origin only
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin, host string
		same         bool
	}{
		{"https://herald.example", "herald.example", true},
		{"https://herald.example", "herald.example:443", true},
		{"https://herald.example:443", "herald.example", true},
		{"http://herald.example", "HERALD.example:80", true},
		{"https://herald.example:8443", "herald.example:8443", true},
		{"https://herald.example", "herald.example:80", false},
		{"http://herald.example", "herald.example:443", false},
		{"https://herald.example", "herald.example:8443", false},
		{"https://other.example", "herald.example:443", false},
	}
	for _, tt := range tests {
		if got := p.allowsOrigin(tt.origin, tt.host); got != tt.same {
			t.Errorf("origin %s, Host %s: allowed %v, want %v", tt.origin, tt.host, got, tt.same)
		}
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Host = tt.host
		r.Header.Set("Origin", tt.origin)
		if got := crossSite(r); got == tt.same {
			t.Errorf("origin %s, Host %s: cross-site %v, want %v", tt.origin, tt.host, got, !tt.same)
		}
	}
}

// TestRateLimitClockStepBack: a token bucket refills as time passes, and
// time that did not pass spends nothing. Buckets measure time with the
// wall clock, which may step back (NTP, a VM resumed): one hour back at
// 20/s used to charge 72,000 tokens, refusing every active user (and
// every socket's subscriptions) with RATE_LIMITED for an hour.
func TestRateLimitClockStepBack(t *testing.T) {
	l := newIdentityLimiter(20, 40)
	now := time.Now()
	if ok, _ := l.allow("alice", now); !ok {
		t.Fatal("first mutation refused")
	}
	stepped := now.Round(0).Add(-time.Hour) // the wall reading alone, as after a step
	if ok, wait := l.allow("alice", stepped); !ok {
		t.Errorf("after the wall clock stepped back 1h, a user with 39 of 40 tokens left is refused for %v", wait)
	}
	var b tokenBucket
	b.take(now, 20, 50)
	if ok, wait := b.take(stepped, 20, 50); !ok {
		t.Errorf("per-socket bucket: after the wall clock stepped back 1h, refused for %v", wait)
	}
	if b.full(stepped, 20) {
		t.Errorf("a bucket with a token spent is full after the wall clock stepped back")
	}
}

// jwtReplica is a replica authenticating with HS256 tokens, whose signer
// makes a token of sub that expires after ttl.
func jwtReplica(t *testing.T) (*replica, func(sub string, ttl time.Duration) string) {
	t.Helper()
	r, signExp := jwtReplicaExp(t)
	return r, func(sub string, ttl time.Duration) string { return signExp(sub, time.Now().Add(ttl).Unix()) }
}

// jwtReplicaExp is jwtReplica with a signer that takes the exp claim as given.
func jwtReplicaExp(t *testing.T) (*replica, func(sub string, exp any) string) {
	t.Helper()
	secret := []byte(strings.Repeat("s", 32))
	authn, err := auth.NewJWT(context.Background(), auth.JWTOptions{Secret: secret, CookieName: "herald_token"})
	if err != nil {
		t.Fatal(err)
	}
	r := newReplica(t, func(o *Options) { o.Authenticator = authn })
	sign := func(sub string, exp any) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": exp}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return r, sign
}

func TestTokenExpiryClosesSocket(t *testing.T) {
	r, sign := jwtReplica(t)
	room := r.room("expiry")
	c := r.dial(subprotocolTransportWS)
	// exp has one-second resolution: this token expires 2–3 s from now.
	token := sign("alice", 3*time.Second)
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	c.expectType("connection_ack")
	c.subscribe("subscribe", "1", liveQuery, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	reason := c.expectClose(closeForbidden, time.Until(exp)+3*time.Second)
	// The keeper checks acknowledged sockets once a second on a fixed
	// schedule (TestAliveSchedule); the rest is scheduling slack under
	// -race on 2 cores.
	late := time.Since(exp)
	if late < 0 || late > time.Second+500*time.Millisecond {
		t.Fatalf("closed %v after the token expired, want within a second", late)
	}
	if !strings.Contains(reason, "expired") {
		t.Fatalf("close reason %q does not say the token expired", reason)
	}
	waitFor(t, "the expired socket's subscription to end", func() bool { return r.members() == 0 })
}

// TestRefreshToASoonerExpiry: a refresh may bring the expiry closer (a
// token for the same user that expires sooner). The keeper looks at an
// idle socket only when it is next due, here its keepalive 15 s on; the
// refresh must make it due, so the socket still closes within about a
// second of the new expiry.
func TestRefreshToASoonerExpiry(t *testing.T) {
	r, sign := jwtReplica(t)
	c := r.dial(subprotocolTransportWS)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + sign("alice", time.Hour)}})
	c.expectType("connection_ack")
	conn := scheduledConn(t, r)
	token := sign("alice", 3*time.Second) // whole seconds: 2 to 3 s away
	id, err := conn.Refresh(context.Background(), token)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	reason := c.expectClose(closeForbidden, time.Until(id.ExpiresAt)+5*time.Second)
	if late := time.Since(id.ExpiresAt); late < 0 || late > time.Second+500*time.Millisecond {
		t.Fatalf("closed %v after the refreshed token expired, want within a second", late)
	}
	if !strings.Contains(reason, "expired") {
		t.Fatalf("close reason %q does not say the token expired", reason)
	}
}

func TestTokenFailuresOverWebSocket(t *testing.T) {
	r, sign := jwtReplica(t)
	tests := []struct {
		name    string
		payload map[string]any
	}{
		{"expired", map[string]any{"authorization": "Bearer " + sign("a", -time.Minute)}},
		{"garbage", map[string]any{"Authorization": "Bearer not.a.token"}},
		{"not a string", map[string]any{"Authorization": 42}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := r.forTest(t).dial(subprotocolTransportWS)
			c.send(map[string]any{"type": "connection_init", "payload": tt.payload})
			c.expectClose(closeForbidden, 5*time.Second)
		})
	}
}

// TestUpgradeCredentialsOverWebSocket: the upgrade request's credentials
// (a cookie, a header) identify the socket when connection_init carries
// none. Bad ones are judged at connection_init, not refused before the
// upgrade: a browser can neither read a refused upgrade's 401 nor drop a
// stale cookie, and its connection_init may carry a fresh token.
func TestUpgradeCredentialsOverWebSocket(t *testing.T) {
	r, sign := jwtReplica(t)
	dev := newReplica(t, nil) // --auth dev: a header names the user
	fresh := sign("carol", time.Minute)
	long := strings.Repeat("a", 100)
	tests := []struct {
		name     string
		upgrade  http.Header
		init     map[string]any
		wantUser string // "": closed with 4403 whose reason has wantWhy
		wantWhy  string
		dev      bool
	}{
		{"dev: bad header, no user in init", http.Header{"X-Herald-User": {long}}, nil, "", "header X-Herald-User: user name has 100", true},
		{"dev: bad header, a user in init", http.Header{"X-Herald-User": {long}}, map[string]any{"user": "erin"}, "erin", "", true},
		{"good cookie, no token in init", http.Header{"Cookie": {"herald_token=" + fresh}}, nil, "carol", "", false},
		{"forged cookie, no token in init", http.Header{"Cookie": {"herald_token=forged"}}, nil, "", "cookie herald_token: jwt: malformed", false},
		{"expired cookie, no token in init", http.Header{"Cookie": {"herald_token=" + sign("carol", -time.Minute)}}, nil, "", "cookie herald_token: jwt: token expired", false},
		{"expired header, no token in init", http.Header{"Authorization": {"Bearer " + sign("carol", -time.Minute)}}, nil, "", "Authorization header: jwt: token expire", false},
		{"expired cookie, fresh token in init", http.Header{"Cookie": {"herald_token=" + sign("carol", -time.Minute)}},
			map[string]any{"Authorization": "Bearer " + fresh}, "carol", "", false},
		{"forged cookie, fresh token in init", http.Header{"Cookie": {"herald_token=forged"}},
			map[string]any{"Authorization": "Bearer " + sign("dave", time.Minute)}, "dave", "", false},
		{"good cookie, expired token in init", http.Header{"Cookie": {"herald_token=" + fresh}},
			map[string]any{"Authorization": "Bearer " + sign("carol", -time.Minute)}, "", "connection_init payload key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
			url := r.wsURL
			if tt.dev {
				url = dev.wsURL
			}
			conn, resp, err := d.Dial(url, tt.upgrade)
			if err != nil {
				t.Fatalf("upgrade: %v (%v); want it upgraded, the credentials judged at connection_init", err, resp)
			}
			defer conn.Close()
			c := &wsClient{t: t, conn: conn}
			c.send(map[string]any{"type": "connection_init", "payload": tt.init})
			if tt.wantUser == "" {
				if reason := c.expectClose(closeForbidden, 5*time.Second); !strings.Contains(reason, tt.wantWhy) {
					t.Fatalf("closed with reason %q, want it to say %q", reason, tt.wantWhy)
				}
				return
			}
			c.expectType("connection_ack")
			c.subscribe("subscribe", "v", `{ viewer { id } }`, nil)
			if f := c.expectType("next"); !strings.Contains(string(f.Payload), `"`+tt.wantUser+`"`) {
				t.Fatalf("viewer: %s, want %s", f.raw, tt.wantUser)
			}
		})
	}
}

// scheduledConn waits until the keeper has checked r's one acknowledged
// socket and scheduled its next look, and returns it.
func scheduledConn(t *testing.T, r *replica) *wsConn {
	t.Helper()
	k := r.server.ws.keeper
	var conn *wsConn
	waitFor(t, "the keeper to check the acknowledged socket and schedule it", func() bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		for i, due := range k.live.due {
			if k.live.conns[i] != nil && due != 0 && due != checking {
				conn = k.live.conns[i]
				return true
			}
		}
		return false
	})
	return conn
}
