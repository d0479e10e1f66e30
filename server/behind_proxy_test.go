package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// behindStrippingProxy serves h behind a reverse proxy that serves it
// under prefix and strips the prefix, as Traefik's StripPrefix, an
// ingress-nginx rewrite-target, Envoy's prefix_rewrite or nginx's
// "location /herald/ { proxy_pass http://herald/; }" do: /herald/graphql
// reaches Herald as /graphql, the rest of the path as sent (an empty
// segment included). Anything outside the prefix is the proxy's own 404,
// as if another application lived there. WebSocket upgrades pass through.
func behindStrippingProxy(t *testing.T, h http.Handler, prefix string) *httptest.Server {
	t.Helper()
	backend := httptest.NewServer(h)
	t.Cleanup(backend.Close)
	target, _ := url.Parse(backend.URL)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimPrefix(pr.In.URL.Path, prefix)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = pr.In.Host // the client's Host, as Traefik, Envoy and ALB pass it
			pr.SetXForwarded()
		},
		FlushInterval: -1,
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, prefix+"/") {
			http.Error(w, "proxy: no such application", http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front
}

// TestGraphiQLUnderStrippedPrefix loads GraphiQL as a browser does behind
// a proxy that serves Herald under a path prefix and strips it: every
// file the page names, resolved against the page's URL, must load, and
// its endpoint must answer a query. Names by absolute path
// (/graphiql/<hash>/..., /graphql) resolve outside the prefix, to the
// proxy's 404: a blank page whose queries would go elsewhere.
func TestGraphiQLUnderStrippedPrefix(t *testing.T) {
	s, _ := newTestServer(t, nil)
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	client := &http.Client{Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	cases := []struct{ prefix, page string }{
		{"/herald", "/"},
		{"/herald", "/graphiql"},
		{"/team/herald", "/"},
		{"", "/"},
		{"", "/graphiql"},
	}
	for _, tc := range cases {
		t.Run(tc.prefix+tc.page, func(t *testing.T) {
			front := behindStrippingProxy(t, s, tc.prefix)
			pageURL, _ := url.Parse(front.URL + tc.prefix + tc.page)
			resp, err := client.Get(pageURL.String())
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("GET %s: %d, nosniff %q: %s", pageURL.Path, resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), page)
			}

			refs := regexp.MustCompile(`(?:href|src)="([^"]+)"`).FindAllStringSubmatch(string(page), -1)
			if len(refs) < 2 {
				t.Fatalf("the page names %d files:\n%s", len(refs), page)
			}
			for _, m := range refs {
				if strings.HasPrefix(m[1], "data:") {
					continue
				}
				ref, err := url.Parse(m[1])
				if err != nil {
					t.Fatal(err)
				}
				abs := pageURL.ResolveReference(ref) // as the browser resolves it
				resp, err := client.Get(abs.String())
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s -> %s: %s", m[1], abs.Path, resp.Status)
				}
			}

			// start.js: new URL(root.dataset.endpoint, document.baseURI).
			em := regexp.MustCompile(`data-endpoint="([^"]+)"`).FindStringSubmatch(string(page))
			if em == nil {
				t.Fatalf("no data-endpoint in the page:\n%s", page)
			}
			ref, _ := url.Parse(em[1])
			endpoint := pageURL.ResolveReference(ref)
			if endpoint.Path != tc.prefix+"/graphql" {
				t.Errorf("endpoint %s resolves to %s, want %s/graphql", em[1], endpoint.Path, tc.prefix)
			}
			req, _ := http.NewRequest(http.MethodPost, endpoint.String(), strings.NewReader(`{"query":"{ __typename }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", front.URL) // GraphiQL's fetch is same-origin
			resp, err = client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var result struct {
				Data json.RawMessage `json:"data"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &result) != nil || len(result.Data) == 0 {
				t.Errorf("endpoint %s -> %s: %s %s", em[1], endpoint.Path, resp.Status, strings.TrimSpace(string(body)))
			}
		})
	}
}

// TestNonCanonicalPathsServedInPlace: a path with an empty or dot segment
// (//graphql, which a base URL ending in "/" joined with "/graphql" gives,
// and which Traefik, Envoy's default and ALBs pass on as sent) is served as
// its cleaned form. http.ServeMux would answer it with a 307 to the
// cleaned path: an HTML body without nosniff, and a Location that is an
// absolute path, which behind a proxy stripping a prefix leads out of it;
// a WebSocket client does not follow a redirect at all. /graphiql serves
// the page rather than a redirect to the assets' directory.
func TestNonCanonicalPathsServedInPlace(t *testing.T) {
	s, _ := newTestServer(t, nil)
	t.Cleanup(func() { _ = s.Shutdown(t.Context()) })
	const query = "?query=%7B__typename%7D"
	cases := []struct {
		target      string
		status      int
		contentType string
		body        string // a substring; "" skips the check
	}{
		{"//graphql" + query, 200, "application/graphql-response+json", `"data":{"__typename":`},
		{"/./graphql" + query, 200, "application/graphql-response+json", `"data":{"__typename":`},
		{"/nope/../graphql" + query, 200, "application/graphql-response+json", `"data":{"__typename":`},
		{"/graphql/." + query, 200, "application/graphql-response+json", `"data":{"__typename":`},
		{"//healthz", 200, "application/json", `"ok"`},
		{"/./readyz", 200, "application/json", `"ready":true`},
		{"//metrics", 200, "text/plain", ""},
		{"/graphiql", 200, "text/html; charset=utf-8", `data-endpoint="./graphql"`},
		{"//graphiql", 200, "text/html; charset=utf-8", `data-endpoint="./graphql"`},
		{"//", 200, "text/html; charset=utf-8", `data-endpoint="./graphql"`},
		// A trailing slash is part of the path: /graphql/ is not the
		// endpoint, and no relative URL the page names leads there.
		{"/graphql/", 404, "application/json", `"not found"`},
		{"//graphql/", 404, "application/json", `"not found"`},
		{"/graphiql/", 404, "application/json", `"not found"`},
	}
	for _, tc := range cases {
		t.Run(tc.target, func(t *testing.T) {
			w := send(t, s, request{method: http.MethodGet, target: tc.target,
				header: http.Header{"Accept": {"application/graphql-response+json"}}})
			if w.Code != tc.status || !strings.HasPrefix(w.Header().Get("Content-Type"), tc.contentType) {
				t.Errorf("GET %s: %d %q, want %d %q; Location %q; body %q", tc.target, w.Code, w.Header().Get("Content-Type"),
					tc.status, tc.contentType, w.Header().Get("Location"), w.Body.String())
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: no X-Content-Type-Options: nosniff", tc.target)
			}
			if !strings.Contains(w.Body.String(), tc.body) {
				t.Errorf("GET %s: body %q lacks %s", tc.target, w.Body.String(), tc.body)
			}
		})
	}

	front := behindStrippingProxy(t, s, "/herald")
	t.Run("POST behind a stripped prefix", func(t *testing.T) {
		client := &http.Client{Timeout: 5 * time.Second}
		t.Cleanup(client.CloseIdleConnections)
		req, _ := http.NewRequest(http.MethodPost, front.URL+"/herald//graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req) // would follow a 307, as fetch does
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Request.URL.Path != "/herald//graphql" || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"data":{"__typename":`) {
			t.Errorf("POST /herald//graphql ended at %s with %s %q", resp.Request.URL.Path, resp.Status, strings.TrimSpace(string(body)))
		}
	})
	t.Run("WebSocket behind a stripped prefix", func(t *testing.T) {
		d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/herald//graphql", nil)
		if err != nil {
			status := "no response"
			if resp != nil {
				status = resp.Status + " Location " + resp.Header.Get("Location")
			}
			t.Fatalf("upgrade at /herald//graphql: %v (%s)", err, status)
		}
		t.Cleanup(func() { _ = conn.Close() })
		c := &wsClient{t: t, conn: conn}
		c.send(map[string]any{"type": "connection_init"})
		c.expectType("connection_ack")
	})
}

// TestStreamsForbidTransformation: an event stream or multipart stream must
// reach the client event by event through any intermediary, not only
// nginx (whose X-Accel-Buffering Herald sets). Compressing intermediaries
// hold a stream's bytes in their compressor until it has enough to emit:
// Cloudflare compresses multipart/mixed by default
// (developers.cloudflare.com/speed/optimization/content/compression), and
// the compression middleware of Express, Next.js and others compress
// text/event-stream. All of them leave alone a response that says
// Cache-Control: no-transform (RFC 9111 section 5.2.2.6; a content coding
// added on the way is a transformation, RFC 9110 section 7.7). Without it,
// behind such an intermediary a subscription's events arrive late or in
// bursts, heartbeats included (and then the intermediary's own idle
// timeout can end the stream).
func TestStreamsForbidTransformation(t *testing.T) {
	s, _ := newTestServer(t, nil)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); _ = s.Shutdown(t.Context()) })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	t.Cleanup(client.CloseIdleConnections)

	open := func(t *testing.T, method, target, body string, header http.Header) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, hs.URL+target, rd)
		req.Header = header
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}
	const sub = `{"query":"subscription { ticks }"}`
	check := func(t *testing.T, resp *http.Response, wantType string) {
		t.Helper()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), wantType) {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("not a stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		cc := strings.ToLower(strings.Join(resp.Header.Values("Cache-Control"), ","))
		if !strings.Contains(cc, "no-transform") {
			t.Errorf("%s stream: Cache-Control %q has no no-transform: a compressing proxy or CDN may buffer it", wantType, cc)
		}
	}
	t.Run("sse distinct connections", func(t *testing.T) {
		check(t, open(t, http.MethodPost, "/graphql", sub, http.Header{
			"Content-Type": {"application/json"}, "Accept": {"text/event-stream"}}), "text/event-stream")
	})
	t.Run("multipart", func(t *testing.T) {
		check(t, open(t, http.MethodPost, "/graphql", sub, http.Header{
			"Content-Type": {"application/json"}, "Accept": {acceptApollo4}}), "multipart/mixed")
	})
	t.Run("sse single connection", func(t *testing.T) {
		put := open(t, http.MethodPut, "/graphql", "", http.Header{})
		tok, _ := io.ReadAll(put.Body)
		if put.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s", put.StatusCode, tok)
		}
		check(t, open(t, http.MethodGet, "/graphql", "", http.Header{
			"Accept": {"text/event-stream"}, "X-Graphql-Event-Stream-Token": {string(tok)}}), "text/event-stream")
	})
}
