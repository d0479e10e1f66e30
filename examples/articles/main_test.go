package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/pubsub"
)

// waitLimit bounds every wait of these tests: a frame, a request.
const waitLimit = 10 * time.Second

// testGateway is the example served on an httptest listener over an event
// log in a temporary directory.
type testGateway struct {
	t     *testing.T
	url   string
	wsURL string
	stop  func()
}

// startGateway serves the example over the event log in dataDir until the
// test ends, or until stop.
func startGateway(t *testing.T, dataDir string) *testGateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	g, err := openGateway(ctx, dataDir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(g.server)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			closeHTTP := func(context.Context) error { hs.Close(); return nil }
			if err := g.stop(ctx, closeHTTP); err != nil {
				t.Errorf("stop the gateway: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	tg := &testGateway{t: t, url: hs.URL, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql", stop: stop}
	if err := g.lib.WaitReady(ctx); err != nil {
		t.Fatalf("the library was not read from the log within %s: %v", waitLimit, err)
	}
	return tg
}

// result is a GraphQL response.
type result struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	Extensions struct {
		Cursor string `json:"cursor"`
	} `json:"extensions"`
}

// code is the first error's extensions.code, or "".
func (r result) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

// post sends an operation over HTTP. It may run on any goroutine.
func (g *testGateway) post(query string, vars map[string]any) (result, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("POST %s: %w", query, err)
	}
	defer resp.Body.Close()
	var r result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return result{}, fmt.Errorf("POST %s: decode the response (status %d): %w", query, resp.StatusCode, err)
	}
	if len(r.Errors) > 0 {
		return r, fmt.Errorf("POST %s: %s (%s)", query, r.Errors[0].Message, r.code())
	}
	return r, nil
}

// must runs an operation over HTTP and decodes its data into a value of T.
func must[T any](g *testGateway, query string, vars map[string]any) T {
	g.t.Helper()
	var v T
	r, err := g.post(query, vars)
	if err == nil {
		err = json.Unmarshal(r.Data, &v)
	}
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

func (g *testGateway) createAuthor(first, last string) string {
	g.t.Helper()
	return must[struct{ CreateAuthor struct{ ID string } }](g,
		`mutation($f: String!, $l: String!) { createAuthor(firstName: $f, lastName: $l) { id } }`,
		map[string]any{"f": first, "l": last}).CreateAuthor.ID
}

const (
	addArticle        = `mutation($a: ID!, $t: String!) { addArticle(authorId: $a, title: $t, text: "draft") { id } }`
	changeArticleText = `mutation($id: ID!, $text: String!, $v: Int) { changeArticleText(id: $id, text: $text, version: $v) { version } }`
)

func (g *testGateway) addArticle(authorID, title string) string {
	g.t.Helper()
	return must[struct{ AddArticle struct{ ID string } }](g, addArticle, map[string]any{"a": authorID, "t": title}).AddArticle.ID
}

// metric is the value of an unlabelled metric at /metrics.
func (g *testGateway) metric(name string) string {
	g.t.Helper()
	resp, err := http.Get(g.url + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if value, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return value
		}
	}
	g.t.Fatalf("/metrics has no %s", name)
	return ""
}

// frame is a WebSocket message of either protocol.
type frame struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsClient speaks graphql-transport-ws, or the legacy graphql-ws.
type wsClient struct {
	t       *testing.T
	conn    *websocket.Conn
	legacy  bool
	backlog []frame // results read while waiting for another operation's
	syncs   int
}

var protocols = []struct {
	name   string
	legacy bool
}{{"graphql-transport-ws", false}, {"graphql-ws", true}}

// dial opens a socket as user and waits for connection_ack.
func (g *testGateway) dial(user string, legacy bool) *wsClient {
	g.t.Helper()
	proto := "graphql-transport-ws"
	if legacy {
		proto = "graphql-ws"
	}
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: waitLimit}
	conn, resp, err := d.Dial(g.wsURL, nil)
	if err != nil {
		g.t.Fatalf("dial %s: %v", proto, err)
	}
	resp.Body.Close()
	g.t.Cleanup(func() { conn.Close() })
	c := &wsClient{t: g.t, conn: conn, legacy: legacy}
	c.send(frame{Type: "connection_init", Payload: json.RawMessage(fmt.Sprintf(`{"user":%q}`, user))})
	if f := c.read(); f.Type != "connection_ack" {
		g.t.Fatalf("%s: got %s %s, want connection_ack", proto, f.Type, f.Payload)
	}
	return c
}

func (c *wsClient) send(f frame) {
	c.t.Helper()
	if err := c.conn.SetWriteDeadline(time.Now().Add(waitLimit)); err != nil {
		c.t.Fatal(err)
	}
	if err := c.conn.WriteJSON(f); err != nil {
		c.t.Fatalf("send %s: %v", f.Type, err)
	}
}

// read returns the next frame that matters, answering pings and skipping
// keepalives and completions.
func (c *wsClient) read() frame {
	c.t.Helper()
	for {
		if err := c.conn.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
			c.t.Fatal(err)
		}
		var f frame
		if err := c.conn.ReadJSON(&f); err != nil {
			c.t.Fatalf("read a frame: %v", err)
		}
		switch f.Type {
		case "ping":
			c.send(frame{Type: "pong"})
		case "ka", "pong", "complete":
		default:
			return f
		}
	}
}

// start starts an operation.
func (c *wsClient) start(id, query string, vars map[string]any) {
	c.t.Helper()
	payload, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		c.t.Fatal(err)
	}
	typ := "subscribe"
	if c.legacy {
		typ = "start"
	}
	c.send(frame{ID: id, Type: typ, Payload: payload})
}

// next returns the next result of operation id; results of other
// operations read meanwhile wait in the backlog. An error frame is
// returned as a result with errors.
func (c *wsClient) next(id string) result {
	c.t.Helper()
	i := slices.IndexFunc(c.backlog, func(f frame) bool { return f.ID == id })
	var f frame
	if i >= 0 {
		f = c.backlog[i]
		c.backlog = slices.Delete(c.backlog, i, i+1)
	} else {
		for f = c.read(); f.ID != id; f = c.read() {
			c.backlog = append(c.backlog, f)
		}
	}
	var r result
	payload := f.Payload
	if f.Type == "error" && !bytes.HasPrefix(payload, []byte("{")) {
		payload = []byte(`{"errors":` + string(payload) + `}`) // graphql-transport-ws: a list of errors
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		c.t.Fatalf("operation %s: %s frame %s: %v", id, f.Type, f.Payload, err)
	}
	return r
}

// sync runs a query on the socket and waits for its answer. The server
// handles a socket's messages in order, and a subscription joins its
// execution before the next message is read, so every subscription
// started before sync is live once it returns.
func (c *wsClient) sync() {
	c.t.Helper()
	c.syncs++
	id := fmt.Sprintf("sync%d", c.syncs)
	c.start(id, `{ __typename }`, nil)
	if r := c.next(id); len(r.Errors) > 0 {
		c.t.Fatalf("sync: %s", r.Errors[0].Message)
	}
}

// data returns the next result of id, decoded, failing on errors.
func data[T any](c *wsClient, id string) (T, string) {
	c.t.Helper()
	var v T
	r := c.next(id)
	if len(r.Errors) > 0 {
		c.t.Fatalf("operation %s: %s (%s)", id, r.Errors[0].Message, r.code())
	}
	if err := json.Unmarshal(r.Data, &v); err != nil {
		c.t.Fatalf("operation %s: %v", id, err)
	}
	return v, r.Extensions.Cursor
}

const (
	authorCreated = `subscription($after: String) { authorCreated(after: $after) { id firstName lastName } }`
	articleEvents = `subscription($after: String) { articleEvents(after: $after) { kind cursor article { id title text version author { lastName } } } }`
)

type authorEvent struct {
	AuthorCreated struct{ ID, FirstName, LastName string }
}

type articleEvent struct {
	ArticleEvents struct {
		Kind, Cursor string
		Article      struct {
			ID, Title, Text string
			Version         int
			Author          struct{ LastName string }
		}
	}
}

// TestBothProtocols follows authors and articles over each WebSocket
// protocol while they are created and changed over HTTP.
func TestBothProtocols(t *testing.T) {
	g := startGateway(t, t.TempDir())
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := g.dial("reader", p.legacy)
			c.start("authors", authorCreated, nil)
			c.start("articles", articleEvents, nil)
			c.sync()

			author := g.createAuthor("Ada", "Lovelace")
			a, cursor := data[authorEvent](c, "authors")
			if a.AuthorCreated.ID != author || a.AuthorCreated.LastName != "Lovelace" || cursor == "" {
				t.Fatalf("authorCreated %+v with cursor %q, want author %s and a cursor", a, cursor, author)
			}
			article := g.addArticle(author, "Notes")
			must[any](g, changeArticleText, map[string]any{"id": article, "text": "the engine", "v": 1})
			for _, want := range []struct {
				kind, text string
				version    int
			}{{"CREATED", "draft", 1}, {"TEXT_CHANGED", "the engine", 2}} {
				e, cursor := data[articleEvent](c, "articles")
				got := e.ArticleEvents
				if got.Kind != want.kind || got.Article.ID != article || got.Article.Text != want.text ||
					got.Article.Version != want.version || got.Article.Author.LastName != "Lovelace" || got.Cursor != cursor {
					t.Fatalf("articleEvents %+v with extensions.cursor %q, want %s of %s at version %d", got, cursor, want.kind, article, want.version)
				}
			}
			if r, err := g.post(changeArticleText, map[string]any{"id": article, "text": "stale", "v": 1}); r.code() != "CONFLICT" {
				t.Fatalf("changing version 1 of an article at version 2: %v, want CONFLICT", err)
			}
		})
	}
}

// TestIdenticalSubscriptionsShareOneExecution subscribes two users over
// the two protocols to the same subscription: the server runs it once and
// both get the same bytes; a different subscription runs on its own.
func TestIdenticalSubscriptionsShareOneExecution(t *testing.T) {
	g := startGateway(t, t.TempDir())
	alice, bob := g.dial("alice", false), g.dial("bob", true)
	alice.start("a", authorCreated, map[string]any{"after": nil})
	bob.start("b", authorCreated, nil) // a null cursor is no cursor: the same subscription
	alice.sync()
	bob.sync()
	g.createAuthor("Grace", "Hopper")
	// Both have received the event, so both executions, were there two,
	// would be counted.
	if a, b := alice.next("a"), bob.next("b"); !bytes.Equal(a.Data, b.Data) || a.Extensions != b.Extensions {
		t.Fatalf("identical subscriptions got different results:\n%s %+v\n%s %+v", a.Data, a.Extensions, b.Data, b.Extensions)
	}
	if n := g.metric("herald_shared_executions"); n != "1" {
		t.Fatalf("herald_shared_executions is %s with two identical subscriptions, want 1", n)
	}

	alice.start("articles", articleEvents, nil)
	alice.sync()
	author := g.createAuthor("Barbara", "Liskov")
	g.addArticle(author, "Abstraction")
	data[articleEvent](alice, "articles")
	if n := g.metric("herald_shared_executions"); n != "2" {
		t.Fatalf("herald_shared_executions is %s with two different subscriptions, want 2", n)
	}
}

// postEvents adds articles by author and changes their texts, n events in
// all, one after the other. It may run on any goroutine.
func (g *testGateway) postEvents(author string, n int) error {
	var article struct{ AddArticle struct{ ID string } }
	for i := range n {
		if i%2 == 1 {
			vars := map[string]any{"id": article.AddArticle.ID, "text": fmt.Sprint("text ", i)}
			if _, err := g.post(changeArticleText, vars); err != nil {
				return err
			}
			continue
		}
		r, err := g.post(addArticle, map[string]any{"a": author, "t": fmt.Sprint("article ", i)})
		if err == nil {
			err = json.Unmarshal(r.Data, &article)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// eventsUntil reads the article events of operation id up to the creation
// of the article last, each as kind, article, version and cursor.
func eventsUntil(c *wsClient, id, last string) []string {
	c.t.Helper()
	var events []string
	for {
		e, cursor := data[articleEvent](c, id)
		got := e.ArticleEvents
		if got.Cursor != cursor {
			c.t.Fatalf("event %+v has extensions.cursor %q", got, cursor)
		}
		events = append(events, fmt.Sprintf("%s %s v%d %s", got.Kind, got.Article.ID, got.Article.Version, cursor))
		if got.Article.ID == last {
			return events
		}
	}
}

// TestResumeFromCursor cuts a subscriber off after its second event,
// changes articles while it is away and while it comes back, and resumes
// it from its last cursor: it gets exactly what an uninterrupted
// subscriber got after that cursor, in order, nothing lost and nothing
// twice. The resumed subscriber joins the shared execution of the
// uninterrupted one, so the server's handoff from its replay to the live
// execution is part of what is checked.
func TestResumeFromCursor(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			g := startGateway(t, t.TempDir())
			var posting sync.WaitGroup
			t.Cleanup(posting.Wait) // before the gateway stops
			author := g.createAuthor("Edsger", "Dijkstra")
			watcher := g.dial("watcher", !p.legacy)
			watcher.start("w", articleEvents, map[string]any{"after": nil})
			watcher.sync()
			first := g.dial("reader", p.legacy)
			first.start("r", articleEvents, map[string]any{"after": nil})
			first.sync()

			if err := g.postEvents(author, 3); err != nil {
				t.Fatal(err)
			}
			data[articleEvent](first, "r")
			_, cursor := data[articleEvent](first, "r")
			first.conn.Close()
			if err := g.postEvents(author, 3); err != nil {
				t.Fatal(err)
			}
			posted := make(chan error, 1)
			posting.Go(func() { posted <- g.postEvents(author, 20) })
			again := g.dial("reader", p.legacy)
			again.start("r", articleEvents, map[string]any{"after": cursor})
			if err := <-posted; err != nil {
				t.Fatal(err)
			}
			last := g.addArticle(author, "the last")

			all := eventsUntil(watcher, "w", last)
			i := slices.IndexFunc(all, func(e string) bool { return strings.HasSuffix(e, " "+cursor) })
			if i != 1 {
				t.Fatalf("the uninterrupted subscriber's second event is not at the cursor %s: %q", cursor, all)
			}
			if got, want := eventsUntil(again, "r", last), all[i+1:]; !slices.Equal(got, want) {
				t.Fatalf("resumed after %s, got\n%s\nwant\n%s", cursor, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// The handoff happened: the replay is retired, and the resumed
			// subscriber is on the watcher's execution.
			for deadline := time.Now().Add(waitLimit); g.metric("herald_shared_executions") != "1"; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("herald_shared_executions is %s %s after the resume caught up, want 1: the replay was never handed off",
						g.metric("herald_shared_executions"), waitLimit)
				}
			}
		})
	}
}

// TestRestartKeepsTheLibraryAndItsCursors stops the example and starts it
// again on the same data: the library is read back from the log, and a
// cursor from before the restart resumes where it was.
func TestRestartKeepsTheLibraryAndItsCursors(t *testing.T) {
	dir := t.TempDir()
	g := startGateway(t, dir)
	c := g.dial("reader", false)
	c.start("a", authorCreated, nil)
	c.sync()
	turing := g.createAuthor("Alan", "Turing")
	_, cursor := data[authorEvent](c, "a")
	church := g.createAuthor("Alonzo", "Church")
	c.conn.Close() // rather than have the stop wait for its answer to 1001
	g.stop()

	g = startGateway(t, dir)
	authors := must[struct{ Authors []struct{ ID string } }](g, `{ authors { id } }`, nil).Authors
	if len(authors) != 2 || authors[0].ID != turing || authors[1].ID != church {
		t.Fatalf("after a restart the authors are %+v, want %s and %s", authors, turing, church)
	}
	c = g.dial("reader", true)
	c.start("resumed", authorCreated, map[string]any{"after": cursor})
	otherLog := base64.RawURLEncoding.EncodeToString([]byte("a1:1:1"))
	c.start("expired", authorCreated, map[string]any{"after": otherLog})
	c.start("bad", authorCreated, map[string]any{"after": "not a cursor"})
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		t.Fatalf("cursor %q: %v", cursor, err)
	}
	epoch := strings.Split(string(raw), ":")[1]
	pastEnd := base64.RawURLEncoding.EncodeToString([]byte("a1:" + epoch + ":zz"))
	c.start("past the end", authorCreated, map[string]any{"after": pastEnd})
	if a, _ := data[authorEvent](c, "resumed"); a.AuthorCreated.ID != church {
		t.Fatalf("resumed after %s's cursor, got %+v, want %s", turing, a, church)
	}
	for id, want := range map[string]string{"expired": "CURSOR_EXPIRED", "bad": "BAD_USER_INPUT", "past the end": "BAD_USER_INPUT"} {
		if r := c.next(id); r.code() != want {
			t.Errorf("subscribing with a cursor that is %s: %+v, want %s", id, r, want)
		}
	}
	c.sync()
	godel := g.createAuthor("Kurt", "Gödel")
	if a, _ := data[authorEvent](c, "resumed"); a.AuthorCreated.ID != godel {
		t.Fatalf("after the replay, got %+v, want %s", a, godel)
	}
}

// TestDataDirInUse: a second gateway on the directory of a running one is
// refused, naming --data-dir (the event log's embedded NATS server locks
// its directory: two on one directory lose what the first stored).
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	startGateway(t, dir)
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	g, err := openGateway(ctx, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		_ = g.stop(ctx, func(context.Context) error { return nil })
		t.Fatal("a second gateway opened the directory of a running one")
	}
	if !strings.Contains(err.Error(), "--data-dir "+dir) || !errors.Is(err, pubsub.ErrDataDirInUse) {
		t.Errorf("err = %v, want ErrDataDirInUse naming --data-dir %s", err, dir)
	}
}
