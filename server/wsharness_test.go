package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
)

// replica is a whole Herald stack for WebSocket tests: embedded NATS in a
// temp dir, the chat service following it, the real schema and a Server
// on an httptest listener.
type replica struct {
	t      *testing.T
	log    *pubsub.Log
	chat   *chat.Service
	server *Server
	http   *httptest.Server
	wsURL  string
	// presence is the replica's presence tracker; nil unless started with
	// one (startReplica).
	presence *pubsub.Presence
}

// newReplica starts a replica; tweak adjusts the server options.
func newReplica(t *testing.T, tweak func(*Options)) *replica {
	t.Helper()
	return newReplicaWith(t, chat.Options{}, tweak)
}

// newReplicaWith starts a replica with chat options (History is also the
// log's per-subject limit).
func newReplicaWith(t *testing.T, chatOpts chat.Options, tweak func(*Options)) *replica {
	t.Helper()
	return newReplicaListening(t, chatOpts, tweak, nil)
}

// newReplicaListening starts a replica whose HTTP listener is wrapped by
// wrap (nil: not wrapped), e.g. to give accepted connections small socket
// buffers.
func newReplicaListening(t *testing.T, chatOpts chat.Options, tweak func(*Options), wrap func(net.Listener) net.Listener) *replica {
	t.Helper()
	return newReplicaOver(t, pubsub.Options{}, chatOpts, tweak, wrap)
}

// newReplicaPair starts two replicas on one NATS server (the first's,
// embedded), as two processes behind a load balancer are.
func newReplicaPair(t *testing.T, tweak func(*Options)) (a, b *replica) {
	t.Helper()
	a = newReplicaOver(t, pubsub.Options{ListenAddr: "127.0.0.1:0"}, chat.Options{}, tweak, nil)
	b = newReplicaOver(t, pubsub.Options{URLs: []string{a.log.ClientURL()}, Partitions: a.log.Partitions()}, chat.Options{}, tweak, nil)
	return a, b
}

// newReplicaOver starts a replica whose event log is opened with logOpts
// (an embedded NATS in a temp dir unless it names servers to connect to).
func newReplicaOver(t *testing.T, logOpts pubsub.Options, chatOpts chat.Options, tweak func(*Options), wrap func(net.Listener) net.Listener) *replica {
	t.Helper()
	return startReplica(t, logOpts, chatOpts, tweak, wrap, nil)
}

// startReplica starts a replica; with presence set, it tracks presence on
// the log's NATS (pubsub.Presence, as cmd/herald does) with those options
// and graph's.
func startReplica(t *testing.T, logOpts pubsub.Options, chatOpts chat.Options, tweak func(*Options), wrap func(net.Listener) net.Listener,
	presence *replicaPresence) *replica {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if len(logOpts.URLs) == 0 {
		logOpts.DataDir = t.TempDir()
	}
	logOpts.MaxMsgsPerSubject = int64(chatOpts.History)
	logOpts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := pubsub.Open(ctx, logOpts)
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	svc := chat.NewService(log, chatOpts)
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = svc.Run(runCtx)
	}()
	var (
		tracker    *pubsub.Presence
		graphOpts  graph.Options
		serverPres Presence
	)
	if presence != nil {
		tracker, err = log.Presence(ctx, presence.tracker)
		if err != nil {
			t.Fatalf("presence: %v", err)
		}
		graphOpts = presence.graph
		graphOpts.Presence = testPresence{tracker}
		serverPres = tracker
	}
	opts := Options{
		Schema:          graph.NewSchemaWith(svc, log.Epoch(), graphOpts),
		Presence:        serverPres,
		Authenticator:   auth.Dev{},
		Readiness:       func(context.Context) []Check { return nil },
		Introspection:   true,
		ViewerDirective: graph.ViewerDirective,
		ResumeArgument:  graph.ResumeArgument,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	if wrap != nil {
		hs.Listener = wrap(hs.Listener)
	}
	hs.Start()
	r := &replica{t: t, log: log, chat: svc, server: srv, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql", presence: tracker}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		hs.Close()
		stop()
		<-ran
		if tracker != nil {
			pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = tracker.Close(pctx) // fails on a replica whose NATS was cut
			cancel()
		}
		if err := log.Close(); err != nil {
			t.Errorf("close event log: %v", err)
		}
	})
	waitFor(t, "the read model to catch up", func() bool { ok, _ := svc.Ready(); return ok })
	return r
}

// room creates a room named name and returns its ID.
func (r *replica) room(name string) string {
	r.t.Helper()
	room, err := r.chat.CreateRoom(context.Background(), chat.Actor{ID: "owner"}, name)
	if err != nil {
		r.t.Fatalf("create room: %v", err)
	}
	return room.ID
}

// post posts text to a room as author and returns the message.
func (r *replica) post(roomID, author, text string) chat.Message {
	r.t.Helper()
	m, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: author}, roomID, text, "")
	if err != nil {
		r.t.Fatalf("post: %v", err)
	}
	return m
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// receive waits up to d for ch to yield or close, and fails the test,
// naming what it waited for, if it does not.
func receive(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// wsClient is a minimal client for both protocols that asserts frames.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

// dial opens a socket offering the given subprotocols.
func (r *replica) dial(subprotocols ...string) *wsClient {
	r.t.Helper()
	d := websocket.Dialer{Subprotocols: subprotocols, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(r.wsURL, nil)
	if err != nil {
		r.t.Fatalf("dial %v: %v (response %v)", subprotocols, err, resp)
	}
	r.t.Cleanup(func() { _ = conn.Close() })
	return &wsClient{t: r.t, conn: conn}
}

// dialTransport opens a graphql-transport-ws socket and completes init as
// user ("" = anonymous).
func (r *replica) dialTransport(user string) *wsClient {
	c := r.dial(subprotocolTransportWS)
	c.init(user)
	c.expectType("connection_ack")
	return c
}

// dialLegacy opens a legacy graphql-ws socket and completes init.
func (r *replica) dialLegacy(user string) *wsClient {
	c := r.dial(subprotocolLegacy)
	c.init(user)
	c.expectType("connection_ack")
	c.expectType("ka")
	return c
}

func (c *wsClient) init(user string) {
	payload := map[string]any{}
	if user != "" {
		payload["user"] = user
	}
	c.send(map[string]any{"type": "connection_init", "payload": payload})
}

func (c *wsClient) send(msg any) {
	c.t.Helper()
	data, err := json.Marshal(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(data))
}

func (c *wsClient) sendRaw(s string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("write %s: %v", s, err)
	}
}

// subscribe sends a subscribe (or legacy start) message.
func (c *wsClient) subscribe(typ, id, query string, vars map[string]any) {
	c.t.Helper()
	c.send(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars}})
}

// frame is a decoded server message.
type frame struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
	raw     string
}

// read returns the next message, failing after timeout.
func (c *wsClient) read(timeout time.Duration) (frame, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	kind, data, err := c.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if kind != websocket.TextMessage {
		return frame{}, errors.New("non-text frame")
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, err
	}
	f.raw = string(data)
	return f, nil
}

// next reads the next message, skipping keepalive, and fails the test if
// none arrives within 5s.
func (c *wsClient) next() frame {
	c.t.Helper()
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if f.Type == "ka" || f.Type == "ping" || f.Type == "pong" {
			continue
		}
		return f
	}
}

func (c *wsClient) expectType(typ string) frame {
	c.t.Helper()
	f, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	if f.Type != typ {
		c.t.Fatalf("got %s, want a %s message", f.raw, typ)
	}
	return f
}

// expectClose reads until the server closes the socket and checks the code.
func (c *wsClient) expectClose(code int, within time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		_ = c.conn.SetReadDeadline(deadline)
		_, data, err := c.conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("socket ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			c.t.Fatalf("close code %d (%q), want %d; last data %s", ce.Code, ce.Text, code, data)
		}
		return ce.Text
	}
}

// data decodes a next/data payload's data into out.
func (f frame) data(t *testing.T, out any) {
	t.Helper()
	if err := f.decodeData(out); err != nil {
		t.Fatal(err)
	}
}

// decodeData decodes a next/data payload's data into out; off the test's
// goroutine, use it rather than data.
func (f frame) decodeData(out any) error {
	var p struct {
		Data   json.RawMessage `json:"data"`
		Errors []any           `json:"errors"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		return fmt.Errorf("payload of %s: %w", f.raw, err)
	}
	if len(p.Errors) > 0 {
		return fmt.Errorf("errors in %s", f.raw)
	}
	if err := json.Unmarshal(p.Data, out); err != nil {
		return fmt.Errorf("data of %s: %w", f.raw, err)
	}
	return nil
}

// keepalive reports whether f is a keepalive message of either protocol,
// which a server may send at any time.
func (f frame) keepalive() bool { return f.Type == "ka" || f.Type == "ping" || f.Type == "pong" }

// answerTimeout bounds a test's plain HTTP request, its answer's body
// included, so that a server that never answers fails the test rather
// than hanging it until go test's own timeout.
const answerTimeout = 30 * time.Second

// doBounded sends req, which expects a plain answer (not a stream), with
// answerTimeout on it.
func doBounded(req *http.Request) (*http.Response, error) {
	return (&http.Client{Timeout: answerTimeout}).Do(req)
}

// postBounded is http.Post with answerTimeout.
func postBounded(url, contentType string, body io.Reader) (*http.Response, error) {
	return (&http.Client{Timeout: answerTimeout}).Post(url, contentType, body)
}

// getBounded is http.Get with answerTimeout.
func getBounded(url string) (*http.Response, error) {
	return (&http.Client{Timeout: answerTimeout}).Get(url)
}

// get performs an HTTP GET on the replica.
func (r *replica) get(path string) (int, string) {
	r.t.Helper()
	resp, err := getBounded(r.http.URL + path)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// members counts the subscriptions joined to shared executions, or is -1
// while an execution is starting. A subscription joins before its
// execution's resolver has run: until it has, nothing watches the room,
// and an event posted meanwhile would not reach the subscription.
func (r *replica) members() int {
	reg := r.server.ws.execs
	reg.mu.Lock()
	defer reg.mu.Unlock()
	n := 0
	for _, e := range reg.byKey {
		select {
		case <-e.started:
		default:
			return -1
		}
		e.mu.RLock()
		n += len(e.members)
		e.mu.RUnlock()
	}
	return n
}

// forTest returns a copy of r whose failures are reported on t.
func (r *replica) forTest(t *testing.T) *replica {
	cp := *r
	cp.t = t
	return &cp
}

func chatActor(id string) chat.Actor { return chat.Actor{ID: id} }

// openSockets counts the sessions (sockets and event streams) being served.
func (r *replica) openSockets() int {
	return r.server.sessions.count()
}

// placesTaken is how many sessions hold a place toward MaxConnections:
// admitted and not yet finished. A session gives its place back after its
// teardown, a moment after it has left the open sessions (openSockets),
// so a test that needs the place free must wait for this.
func (r *replica) placesTaken() int {
	s := r.server.sessions
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.admitted
}

func decodeB64(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

func encodeB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
