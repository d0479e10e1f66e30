package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestCentrifugoMessages(t *testing.T) {
	for _, tc := range []struct {
		name, frame string
		want        []string
	}{
		{"one message", `{"id":1,"connect":{}}`, []string{`{"id":1,"connect":{}}`}},
		{"several, one a line", "{}\n{\"id\":2,\"subscribe\":{}}\n{\"push\":{}}", []string{"{}", `{"id":2,"subscribe":{}}`, `{"push":{}}`}},
		{"a final newline and an empty line", "{}\n\n{}\n", []string{"{}", "{}"}},
		{"CRLF", "{}\r\n{\"id\":3}", []string{"{}", `{"id":3}`}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for m := range messages([]byte(tc.frame)) {
				got = append(got, string(m))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("messages(%q) = %q, want %q", tc.frame, got, tc.want)
			}
		})
	}
	// A consumer that stops early stops the split.
	n := 0
	for range messages([]byte("{}\n{}\n{}")) {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("stopped after %d messages, want 2", n)
	}
}

func TestParseCentrifugo(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		want      cfMessage
	}{
		{"a ping", `{}`, cfMessage{kind: cfPing}},
		{"a ping with a space", `{ }`, cfMessage{kind: cfPing}},
		{"a publication", `{"push":{"channel":"lg-x-0","pub":{"data":{"text":"lg|0|1|1"}}}}`, cfMessage{kind: cfPub, channel: []byte("lg-x-0")}},
		{"a publication laid out otherwise", `{"push":{"pub":{"data":{"text":"lg|0|1|1"},"offset":3},"channel":"lg-x-0"}}`,
			cfMessage{kind: cfPub, channel: []byte("lg-x-0")}},
		{"a channel with an escape", `{"push":{"channel":"a\"b","pub":{"data":{}}}}`, cfMessage{kind: cfPub, channel: []byte(`a"b`)}},
		{"the connect reply", `{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`, cfMessage{kind: cfReply, id: 1}},
		{"a subscribe reply", `{"id":2,"subscribe":{}}`, cfMessage{kind: cfReply, id: 2}},
		{"an error reply", `{"id":3,"error":{"code":105,"message":"already subscribed"}}`, cfMessage{kind: cfError, id: 3, detail: "105 already subscribed"}},
		{"the server unsubscribes", `{"push":{"channel":"c","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}`,
			cfMessage{kind: cfUnsubscribe, channel: []byte("c"), detail: `{"code":2000,"reason":"server unsubscribe"}`}},
		{"a disconnect push", `{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`, cfMessage{kind: cfDisconnect, detail: "3001 shutdown"}},
		{"a join push", `{"push":{"channel":"c","join":{"info":{"client":"x"}}}}`, cfMessage{kind: cfOtherPush, channel: []byte("c")}},
		{"no JSON", `nope`, cfMessage{kind: cfUnknown}},
		{"an object of something else", `{"type":"next"}`, cfMessage{kind: cfUnknown}},
		{"a channel prefix cut short", `{"push":{"channel":"c`, cfMessage{kind: cfUnknown}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parseCentrifugo([]byte(tc.msg))
			if got.kind != tc.want.kind || got.id != tc.want.id || !bytes.Equal(got.channel, tc.want.channel) || got.detail != tc.want.detail {
				t.Errorf("parseCentrifugo(%s) = %+v (channel %q), want %+v (channel %q)", tc.msg, got, got.channel, tc.want, tc.want.channel)
			}
		})
	}
}

// newCentrifugoTestRun is a run with two rooms (channels a and b) and one
// connection subscribed to both, which does not answer pings (its connect
// reply said pong false), so that no socket is needed.
func newCentrifugoTestRun() (*run, *conn) {
	r := &run{cfg: Config{Transport: transportCentrifugo}, errs: map[string]int{}, closeCodes: map[string]int{},
		rooms: []*roomState{{id: "a"}, {id: "b"}}}
	c := &conn{proto: transportCentrifugo, subs: []*sub{{room: 0}, {room: 1}}, done: make(chan struct{})}
	return r, c
}

// cfPubOf is Centrifugo's push of an event's text on channel.
func cfPubOf(channel, text string) string {
	return `{"push":{"channel":"` + channel + `","pub":{"data":{"text":"` + text + `"}}}}`
}

func TestCentrifugoFrame(t *testing.T) {
	for _, tc := range []struct {
		name             string
		frames           []string
		delivered, pings int64
		probes           [2]bool
		dead             [2]bool
		misrouted        int
		errs             map[string]int
	}{
		{name: "several publications and a ping in one frame",
			frames:    []string{cfPubOf("a", "lg|0|1|1") + "\n" + cfPubOf("b", "lg|1|1|1") + "\n{}\n" + cfPubOf("a", "lg|0|2|1")},
			delivered: 3, pings: 1},
		{name: "probes, subscribe replies", frames: []string{`{"id":2,"subscribe":{}}` + "\n" + `{"id":3,"subscribe":{}}`, cfPubOf("b", "probe|1|1")},
			probes: [2]bool{false, true}},
		{name: "a duplicate is counted once", frames: []string{cfPubOf("a", "lg|0|1|1"), cfPubOf("a", "lg|0|1|1")}, delivered: 1},
		{name: "an event of another room", frames: []string{cfPubOf("a", "lg|1|1|1")}, misrouted: 1},
		{name: "a channel the connection is not on", frames: []string{cfPubOf("z", "lg|0|1|1")}, errs: map[string]int{"unknown-channel": 1}},
		{name: "a refused subscription", frames: []string{`{"id":3,"error":{"code":103,"message":"permission denied"}}`},
			dead: [2]bool{false, true}, errs: map[string]int{"sub-error": 1}},
		{name: "unsubscribed by the server", frames: []string{`{"push":{"channel":"a","unsubscribe":{"code":2000}}}`},
			dead: [2]bool{true, false}, errs: map[string]int{"sub-complete": 1}},
		{name: "a disconnect", frames: []string{`{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}`}, errs: map[string]int{"closed": 1}},
		{name: "something else", frames: []string{"{}\nnope"}, pings: 1, errs: map[string]int{"unexpected-frame": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := newCentrifugoTestRun()
			for _, f := range tc.frames {
				r.centrifugoFrame(c, []byte(f), time.Now())
			}
			if r.delivered.Load() != tc.delivered || r.kas.Load() != tc.pings {
				t.Errorf("delivered %d, unanswered pings %d; want %d, %d", r.delivered.Load(), r.kas.Load(), tc.delivered, tc.pings)
			}
			for j, s := range c.subs {
				if s.probe.Load() != tc.probes[j] || s.dead.Load() != tc.dead[j] {
					t.Errorf("sub %d: probe %v, dead %v; want %v, %v", j, s.probe.Load(), s.dead.Load(), tc.probes[j], tc.dead[j])
				}
			}
			if c.subs[0].misrouted != tc.misrouted {
				t.Errorf("misrouted %d, want %d", c.subs[0].misrouted, tc.misrouted)
			}
			if len(r.errs) != len(tc.errs) {
				t.Errorf("errors %v (%v), want %v", r.errs, r.errSamples, tc.errs)
			}
			for k, n := range tc.errs {
				if r.errs[k] != n {
					t.Errorf("errors %v (%v), want %v", r.errs, r.errSamples, tc.errs)
				}
			}
		})
	}
}

// TestCentrifugoFrameAllocatesNothing: with thousands of sockets the
// readers must not be the load generator's bottleneck, so a frame of
// publications and pings costs no allocation to parse.
func TestCentrifugoFrameAllocatesNothing(t *testing.T) {
	r, c := newCentrifugoTestRun()
	frame := []byte(cfPubOf("a", "lg|0|1|1") + "\n{}\n" + cfPubOf("b", "lg|1|1|1"))
	if n := testing.AllocsPerRun(1000, func() { r.centrifugoFrame(c, frame, time.Now()) }); n != 0 {
		t.Errorf("%.1f allocations per frame", n)
	}
	if r.delivered.Load() != 2 || len(r.errs) != 0 {
		t.Errorf("delivered %d, errors %v", r.delivered.Load(), r.errSamples)
	}
}

func TestCentrifugoAnswer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		err    string // part of the error; "" for none
	}{
		{"published", 200, `{"result":{}}`, ""},
		{"published, nothing to say", 200, `{}`, ""},
		{"an API error", 200, `{"error":{"code":102,"message":"unknown channel"}}`, "API error 102: unknown channel"},
		{"an HTTP error", 401, `{"error":"unauthorized"}`, "HTTP 401"},
		{"not JSON", 200, `oops`, "HTTP 200: oops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := centrifugoAnswer(tc.status, []byte(tc.body))
			if (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
				t.Errorf("centrifugoAnswer = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestCentrifugoEndpoint(t *testing.T) {
	for _, tc := range []struct {
		base, path string
		ws         bool
		want       string
	}{
		{"http://127.0.0.1:8000", centrifugoWSPath, true, "ws://127.0.0.1:8000/connection/websocket"},
		{"https://h/", centrifugoWSPath, true, "wss://h/connection/websocket"},
		{"http://h/prefix/", centrifugoPublishPath, false, "http://h/prefix/api/publish"},
	} {
		if got := centrifugoEndpoint(tc.base, tc.path, tc.ws); got != tc.want {
			t.Errorf("centrifugoEndpoint(%q, %q, %v) = %q, want %q", tc.base, tc.path, tc.ws, got, tc.want)
		}
	}
}

// fakeCentrifugo speaks what loadgen uses of Centrifugo: the JSON client
// protocol at /connection/websocket (connect, subscribe, publications,
// pings) and the HTTP API's publish. It batches as Centrifugo may: all
// replies to one frame of commands in one frame, and each publication in
// one frame with a ping after it.
type fakeCentrifugo struct {
	t         *testing.T
	mu        sync.Mutex
	channels  map[string][]func(frame []byte) // channel -> subscribers' writers
	publishes atomic.Int64
	pongs     atomic.Int64
	commands  atomic.Int64 // connect and subscribe commands
}

func newFakeCentrifugo(t *testing.T) *httptest.Server {
	f := &fakeCentrifugo{t: t, channels: map[string][]func([]byte){}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /connection/websocket", f.ws)
	mux.HandleFunc("POST /api/publish", f.publish)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	t.Cleanup(func() {
		t.Logf("fake Centrifugo: %d commands, %d publishes, %d pongs", f.commands.Load(), f.publishes.Load(), f.pongs.Load())
	})
	return hs
}

func (f *fakeCentrifugo) publish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Channel == "" || len(req.Data) == 0 {
		_, _ = w.Write([]byte(`{"error":{"code":107,"message":"bad request"}}`))
		return
	}
	f.publishes.Add(1)
	frame := []byte(`{"push":{"channel":"` + req.Channel + `","pub":{"data":` + string(req.Data) + "}}}\n{}")
	f.mu.Lock()
	subs := slices.Clone(f.channels[req.Channel])
	f.mu.Unlock()
	for _, send := range subs {
		send(frame)
	}
	_, _ = w.Write([]byte(`{"result":{}}`))
}

func (f *fakeCentrifugo) ws(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	var wmu sync.Mutex
	send := func(frame []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_ = c.WriteMessage(websocket.TextMessage, frame)
	}
	for {
		_, frame, err := c.ReadMessage()
		if err != nil {
			return
		}
		if replies := f.commandsOf(frame, send); len(replies) > 0 {
			send(bytes.Join(replies, []byte{'\n'}))
		}
	}
}

// commandsOf handles a frame of commands and returns the replies.
func (f *fakeCentrifugo) commandsOf(frame []byte, send func([]byte)) [][]byte {
	var replies [][]byte
	for msg := range bytes.SplitSeq(frame, []byte{'\n'}) {
		if string(msg) == "{}" {
			f.pongs.Add(1)
			continue
		}
		var cmd struct {
			ID        uint32           `json:"id"`
			Connect   *json.RawMessage `json:"connect"`
			Subscribe *struct {
				Channel string `json:"channel"`
			} `json:"subscribe"`
		}
		if err := json.Unmarshal(msg, &cmd); err != nil {
			f.t.Errorf("fake Centrifugo: bad command %q", msg)
			continue
		}
		f.commands.Add(1)
		switch {
		case cmd.Connect != nil:
			replies = append(replies, fmt.Appendf(nil, `{"id":%d,"connect":{"client":"x","version":"fake","ping":25,"pong":true}}`, cmd.ID))
		case cmd.Subscribe != nil:
			f.mu.Lock()
			f.channels[cmd.Subscribe.Channel] = append(f.channels[cmd.Subscribe.Channel], send)
			f.mu.Unlock()
			replies = append(replies, fmt.Appendf(nil, `{"id":%d,"subscribe":{}}`, cmd.ID))
		default:
			f.t.Errorf("fake Centrifugo: unexpected command %q", msg)
		}
	}
	return replies
}

// TestRunCentrifugo runs loadgen against the fake Centrifugo over the
// command line: every event delivered once and in order, every ping
// (one after each publication) answered, nothing created.
func TestRunCentrifugo(t *testing.T) {
	hs := newFakeCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{URL: hs.URL + "/", Transport: transportCentrifugo, Connections: 20, SubsPerConn: 2, Rooms: 4,
		Events: 40, Inflight: 4, RequireZeroLoss: true, SetupTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	writeSummary(&summary, rep)
	t.Logf("summary:\n%s", summary.String())
	if !rep.Pass {
		t.Fatalf("run failed: %v %v", rep.Failures, rep.ErrorSample)
	}
	s := rep.Setup
	if s.ConnectionsEstablished != 20 || s.ByProtocol[transportCentrifugo] != 20 || s.SubscriptionsLive != 40 || s.RoomsCreated != 0 {
		t.Errorf("setup: %+v", s)
	}
	// 40 subscriptions over 4 channels, 10 events per channel.
	if d := rep.Delivery; d.Expected != 400 || d.Received != 400 || d.Foreign != 0 {
		t.Errorf("delivery: %+v", d)
	}
	// A ping follows each publication to each subscriber: at least the
	// events' 400, and every one answered.
	if rep.PingsAnswered < 400 || rep.KeepAlives != 0 {
		t.Errorf("pings answered %d, unanswered %d", rep.PingsAnswered, rep.KeepAlives)
	}
	if rep.Config.Protocol != transportCentrifugo || rep.CloseCodes["1000"] != 20 || len(rep.Errors) != 0 {
		t.Errorf("protocol %q, close codes %v, errors %v", rep.Config.Protocol, rep.CloseCodes, rep.ErrorSample)
	}
}
