package server

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/testrig"
)

// credentialCheckedRequests are the raw requests, one per way in, whose
// Authorization header is checked before anything else is done for them.
var credentialCheckedRequests = []struct {
	name    string
	request func(token string) string
}{
	{"HTTP GET", func(token string) string {
		return "GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nHost: herald\r\n" +
			"Authorization: Bearer " + token + "\r\n\r\n"
	}},
	{"HTTP POST", func(token string) string {
		body := `{"query":"{__typename}"}`
		return fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"+
			"Content-Length: %d\r\nAuthorization: Bearer %s\r\n\r\n%s", len(body), token, body)
	}},
	{"WebSocket upgrade", func(token string) string {
		return "GET /graphql HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
			"Sec-WebSocket-Protocol: graphql-transport-ws\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	}},
}

// TestCredentialsUncheckedLogging: credentials the authenticator cannot
// check are logged at ERROR, with the client's address and the path, and
// answered 503, over HTTP and on a WebSocket upgrade alike; unless the
// client hung up while they were checked (a JWKS refetch for a made-up key
// id outlasting it), which is no failure of the server's, answered to
// no one, and logged at DEBUG only, so that no client can page an
// operator alerting on errors, however many such requests it sends.
func TestCredentialsUncheckedLogging(t *testing.T) {
	for _, tc := range credentialCheckedRequests {
		t.Run(tc.name+"/client leaves", func(t *testing.T) {
			jwksURL, refetched := slowJWKS(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The default MinRefreshInterval (a minute): the clock is moved
			// past it after the start's fetch, as for a replica up a while.
			var skew atomic.Int64
			now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			j, err := auth.NewJWT(ctx, auth.JWTOptions{JWKSURL: jwksURL, Now: now})
			if err != nil {
				t.Fatalf("NewJWT: %v", err)
			}
			skew.Store(int64(2 * time.Minute))
			entered := make(chan struct{}, 8)
			addr, answered, logs := serveWatched(t, enteringAuthenticator{j, entered})

			// The first client's unknown kid starts the one refetch, which
			// the provider holds; the later ones share it, so each leaves
			// while its credentials are being checked.
			const clients = 4
			for i := range clients {
				conn := dialRaw(t, addr)
				if _, err := conn.Write([]byte(tc.request(unknownKidToken(fmt.Sprintf("made-up-%d", i))))); err != nil {
					t.Fatal(err)
				}
				await(t, entered, fmt.Sprintf("client %d: its credentials are not being checked", i))
				if i == 0 {
					await(t, refetched, "no JWKS refetch for an unknown kid")
				}
				conn.Close()
				if status := awaitAnswer(t, answered); status != 0 {
					t.Errorf("client %d, which left, was answered %d", i, status)
				}
			}
			if lines := linesAboveDebug(logs); len(lines) > 0 {
				t.Errorf("%d clients that hung up during authentication left %d lines above DEBUG:\n%s",
					clients, len(lines), strings.Join(lines, "\n"))
			}
			if n := strings.Count(logs.String(), "the client left while its credentials were checked"); n != clients {
				t.Errorf("%d clients left, and %d were logged as leaving:\n%s", clients, n, logs)
			}
		})

		t.Run(tc.name+"/provider fails", func(t *testing.T) {
			addr, answered, logs := serveWatched(t, failing{})
			conn := dialRaw(t, addr)
			defer conn.Close()
			if _, err := conn.Write([]byte(tc.request(unknownKidToken("k1")))); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
			awaitAnswer(t, answered)
			lines := linesAboveDebug(logs)
			if len(lines) != 1 {
				t.Fatalf("%d lines above DEBUG for one request the authenticator could not check, want 1:\n%s",
					len(lines), strings.Join(lines, "\n"))
			}
			for _, want := range []string{"level=ERROR", "remote_addr=" + conn.LocalAddr().String(), "path=/graphql",
				"context deadline exceeded"} {
				if !strings.Contains(lines[0], want) {
					t.Errorf("the line lacks %q:\n%s", want, lines[0])
				}
			}
		})
	}
}

// slowJWKS serves a JWK Set of one ES256 key (kid "k1") on loopback: the
// first fetch (NewJWT's) gets it at once; a later one is announced on
// refetched and then held until the test ends (5 s at most), as by a
// provider slower than Herald's clients are patient.
func slowJWKS(t *testing.T) (url string, refetched <-chan struct{}) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set, err := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": b64(pub[1:33]), "y": b64(pub[33:65]),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 8)
	release := make(chan struct{})
	var fetches atomic.Int64
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fetches.Add(1) > 1 {
			ch <- struct{}{}
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}))
	t.Cleanup(js.Close)
	t.Cleanup(func() { close(release) }) // before js.Close, which waits for the held fetch
	return js.URL, ch
}

// unknownKidToken is an ES256 token naming the key id kid; its signature
// is never looked at.
func unknownKidToken(kid string) string {
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(map[string]any{"sub": "mallory", "exp": time.Now().Add(time.Hour).Unix()})
	return b64(h) + "." + b64(p) + "." + b64(make([]byte, 64))
}

// enteringAuthenticator announces on entered each request whose
// credentials it begins to check.
type enteringAuthenticator struct {
	auth.Authenticator
	entered chan<- struct{}
}

func (a enteringAuthenticator) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	a.entered <- struct{}{}
	return a.Authenticator.FromRequest(r)
}

// serveWatched serves a test server with authn on loopback until the test
// ends. Once the server's handler has returned for a request, answered
// gets the status it wrote (0: none).
func serveWatched(t *testing.T, authn auth.Authenticator) (addr string, answered <-chan int, logs *testrig.LogBuffer) {
	t.Helper()
	s, logs := newTestServer(t, func(o *Options) { o.Authenticator = authn })
	ch := make(chan int, 8)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() { ch <- sw.status }()
		s.ServeHTTP(sw, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		hs.Close()
	})
	return hs.Listener.Addr().String(), ch, logs
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn
}

func await(t *testing.T, ch <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal(failure)
	}
}

// awaitAnswer waits for the server's handler to return, and returns the
// status it wrote.
func awaitAnswer(t *testing.T, answered <-chan int) int {
	t.Helper()
	select {
	case status := <-answered:
		return status
	case <-time.After(5 * time.Second):
		t.Fatal("the server's handler did not return")
		return 0
	}
}

// linesAboveDebug returns the lines of logs logged at INFO or above.
func linesAboveDebug(logs *testrig.LogBuffer) []string {
	var lines []string
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if line != "" && !strings.Contains(line, "level=DEBUG") {
			lines = append(lines, line)
		}
	}
	return lines
}
