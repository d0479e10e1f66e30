package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name  string
		in    string
		size  int // the buffer; lines longer than it are gathered
		lines []string
		err   error // after the lines
	}{
		{"LF", "a\nbc\n\n", 16, []string{"a", "bc", ""}, io.EOF},
		{"CRLF", "a\r\n\r\nb\r\n", 16, []string{"a", "", "b"}, io.EOF},
		{"a CR inside a line stays", "a\rb\n", 16, []string{"a\rb"}, io.EOF},
		{"a line longer than the buffer", long + "\nz\n", 16, []string{long, "z"}, io.EOF},
		{"a long line with CRLF", long + "\r\n", 16, []string{long}, io.EOF},
		{"the end in the middle of a line", "a\nbc", 16, []string{"a"}, io.ErrUnexpectedEOF},
		{"the end in the middle of a long line", "a\n" + long, 16, []string{"a"}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader(tc.in), tc.size)}
			for i, want := range tc.lines {
				got, err := lr.next()
				if err != nil || string(got) != want {
					t.Fatalf("line %d = %q, %v; want %q", i, got, err, want)
				}
			}
			if got, err := lr.next(); !errors.Is(err, tc.err) {
				t.Fatalf("after the lines: %q, %v; want %v", got, err, tc.err)
			}
		})
	}
}

// newTestRun is a run with what the stream readers use, and one stream
// subscribed to room 0.
func newTestRun(transport string) (*run, *conn) {
	r := &run{cfg: Config{Transport: transport}, errs: map[string]int{}, closeCodes: map[string]int{}}
	c := &conn{proto: transport, subs: []*sub{{room: 0}}, done: make(chan struct{})}
	return r, c
}

// Results as Herald frames them, for the default query.
const (
	sseNext = "event: next\nid: c1\ndata: {\"data\":{\"messagePosted\":{\"text\":\"lg|0|1|1\"}},\"extensions\":{\"cursor\":\"c1\"}}\n\n"
	sseEnd  = "event: complete\ndata:\n\n"
	mpHead  = "Content-Type: application/json; charset=utf-8\r\n\r\n"
	mpNext  = mpHead + `{"payload":{"data":{"messagePosted":{"text":"lg|0|1|1"}}}}` + "\r\n--graphql\r\n"
	mpBeat  = mpHead + "{}\r\n--graphql\r\n"
)

// streamCase is a stream's body and what reading it should count.
type streamCase struct {
	name                   string
	body                   string
	delivered, probes, kas int64
	errs                   map[string]int // error categories
	err                    error          // what the parser returns
	dead                   bool           // the subscription ended
}

func (tc streamCase) check(t *testing.T, r *run, c *conn, err error) {
	t.Helper()
	s := c.subs[0]
	var probes int64
	if s.probe.Load() {
		probes = 1
	}
	if !errors.Is(err, tc.err) {
		t.Errorf("returned %v, want %v", err, tc.err)
	}
	if r.delivered.Load() != tc.delivered || probes != tc.probes || r.kas.Load() != tc.kas || s.dead.Load() != tc.dead {
		t.Errorf("delivered %d, probe %d, keepalives %d, dead %v; want %d, %d, %d, %v",
			r.delivered.Load(), probes, r.kas.Load(), s.dead.Load(), tc.delivered, tc.probes, tc.kas, tc.dead)
	}
	if len(r.errs) != len(tc.errs) {
		t.Errorf("errors %v (%v), want %v", r.errs, r.errSamples, tc.errs)
	}
	for k, n := range tc.errs {
		if r.errs[k] != n {
			t.Errorf("errors %v (%v), want %v", r.errs, r.errSamples, tc.errs)
		}
	}
}

func TestReadSSE(t *testing.T) {
	for _, tc := range []streamCase{
		{name: "preamble, results, keepalives", body: ":\n\n" + sseNext + ":\n\n" + strings.Replace(sseNext, "|1|1", "|2|1", 1),
			delivered: 2, kas: 2, err: io.EOF},
		{name: "a probe", body: "event: next\ndata: {\"data\":{\"messagePosted\":{\"text\":\"probe|0|1\"}}}\n\n", probes: 1, err: io.EOF},
		{name: "CRLF lines, no space after the colon, data over two lines",
			body: "event:next\r\ndata:{\"data\":{\"messagePosted\":\r\ndata: {\"text\":\"lg|0|1|1\"}}}\r\n\r\n", delivered: 1, err: io.EOF},
		{name: "a duplicate is counted once", body: sseNext + sseNext, delivered: 1, err: io.EOF},
		{name: "another room's event is misrouted", body: strings.Replace(sseNext, "lg|0|", "lg|1|", 1), err: io.EOF},
		{name: "complete ends the subscription", body: sseNext + sseEnd + sseNext, delivered: 1,
			errs: map[string]int{"sub-complete": 1}, err: errStreamEnded, dead: true},
		{name: "an error, then complete", body: "event: next\ndata: {\"errors\":[{\"message\":\"slow\"}]}\n\n" + sseEnd,
			errs: map[string]int{"result-error": 1, "sub-complete": 1}, err: errStreamEnded, dead: true},
		{name: "an unknown event", body: "event: hello\ndata: x\n\n", errs: map[string]int{"unexpected-event": 1}, err: io.EOF},
		{name: "a field alone and an unknown field", body: "retry: 10\nid\n\n" + sseNext, delivered: 1, err: io.EOF},
		{name: "cut in the middle of an event", body: "event: next\ndata: {\"da", err: io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := newTestRun(transportSSE)
			lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader(tc.body), 64)}
			err := r.readSSE(c, lr)
			tc.check(t, r, c, err)
			if tc.name == "another room's event is misrouted" && c.subs[0].misrouted != 1 {
				t.Errorf("misrouted %d, want 1", c.subs[0].misrouted)
			}
		})
	}
}

func TestReadMultipart(t *testing.T) {
	const pre = "\r\n--graphql\r\n"
	for _, tc := range []streamCase{
		{name: "results and heartbeats", body: pre + mpNext + mpBeat + strings.Replace(mpNext, "|1|1", "|2|1", 1),
			delivered: 2, kas: 1, err: io.EOF},
		{name: "the end of a completed subscription", body: pre + mpNext + mpHead + "{}\r\n--graphql--\r\n",
			delivered: 1, kas: 1, errs: map[string]int{"sub-complete": 1}, err: errStreamEnded, dead: true},
		{name: "a transport error ends it", body: pre + mpHead + `{"payload":null,"errors":[{"message":"slow"}]}` + "\r\n--graphql--\r\n",
			errs: map[string]int{"sub-error": 1}, err: errStreamEnded, dead: true},
		{name: "a payload laid out otherwise, over two lines", body: pre + mpHead + "{ \"payload\" :\r\n{\"data\":{\"messagePosted\":{\"text\":\"lg|0|1|1\"}}}}\r\n--graphql\r\n",
			delivered: 1, err: io.EOF},
		{name: "a preamble with text, part headers in another case", body: "ignored\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{}\r\n--graphql\r\n",
			kas: 1, err: io.EOF},
		{name: "a part that is no JSON", body: pre + mpHead + "nope\r\n--graphql\r\n", errs: map[string]int{"bad-part": 1}, err: io.EOF},
		{name: "cut in the middle of a part", body: pre + mpHead + `{"payl`, err: io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, c := newTestRun(transportMultipart)
			lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader(tc.body), 64)}
			tc.check(t, r, c, r.readMultipart(c, lr, "graphql"))
		})
	}
}

// cycleReader returns b over and over.
type cycleReader struct {
	b   []byte
	off int
}

func (cr *cycleReader) Read(p []byte) (int, error) {
	n := copy(p, cr.b[cr.off:])
	cr.off = (cr.off + n) % len(cr.b)
	return n, nil
}

// TestStreamParsingAllocatesNothing: with thousands of streams the
// readers must not be the load generator's bottleneck, so reading a result
// (and a keepalive) allocates nothing once the buffers are grown.
func TestStreamParsingAllocatesNothing(t *testing.T) {
	t.Run("sse", func(t *testing.T) {
		r, c := newTestRun(transportSSE)
		lr := &lineReader{br: bufio.NewReaderSize(&cycleReader{b: []byte(sseNext + ":\n\n")}, streamBufferSize)}
		var p sseParser
		step := func() {
			for range 6 { // an event's four lines, and a keepalive's two
				line, err := lr.next()
				if err != nil {
					t.Fatal(err)
				}
				if comment, dispatch := p.line(line); dispatch && !comment {
					r.sseEvent(c, c.subs[0], &p)
					p.reset()
				}
			}
		}
		step()
		if n := testing.AllocsPerRun(1000, step); n != 0 {
			t.Errorf("%.1f allocations per event", n)
		}
		if r.delivered.Load() != 1 || len(r.errs) != 0 {
			t.Errorf("delivered %d, errors %v", r.delivered.Load(), r.errSamples)
		}
	})
	t.Run("multipart", func(t *testing.T) {
		r, c := newTestRun(transportMultipart)
		lr := &lineReader{br: bufio.NewReaderSize(&cycleReader{b: []byte("--graphql\r\n" + mpNext + mpBeat)}, streamBufferSize)}
		p := newMultipartParser("graphql")
		step := func() {
			for range 7 { // the delimiter, then two parts of three lines
				line, err := lr.next()
				if err != nil {
					t.Fatal(err)
				}
				if part, done, _ := p.line(line); done {
					r.multipartPart(c, c.subs[0], part)
				}
			}
		}
		step()
		if n := testing.AllocsPerRun(1000, step); n != 0 {
			t.Errorf("%.1f allocations per part", n)
		}
		if r.delivered.Load() != 1 || len(r.errs) != 0 {
			t.Errorf("delivered %d, errors %v", r.delivered.Load(), r.errSamples)
		}
	})
}

func TestConfigTransport(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:1/graphql", Connections: 1, Events: 1}
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		ok    bool
	}{
		{"WebSockets by default", func(c *Config) {}, true},
		{"sse", func(c *Config) { c.Transport = transportSSE }, true},
		{"multipart", func(c *Config) { c.Transport = transportMultipart }, true},
		{"a protocol other than WebSocket's is ignored by streams", func(c *Config) { c.Transport = transportSSE; c.Protocol = "x" }, true},
		{"an unknown transport", func(c *Config) { c.Transport = "h3" }, false},
		{"two subscriptions on one stream", func(c *Config) { c.Transport = transportSSE; c.SubsPerConn = 2 }, false},
		{"streams over https", func(c *Config) { c.Transport = transportMultipart; c.URL = "https://127.0.0.1:1/graphql" }, false},
		{"a bad WebSocket protocol", func(c *Config) { c.Protocol = "x" }, false},
		{"centrifugo", func(c *Config) { c.Transport = transportCentrifugo; c.Protocol = "x" }, true},
		{"centrifugo, a connection on two channels", func(c *Config) { c.Transport = transportCentrifugo; c.SubsPerConn = 2; c.Rooms = 2 }, true},
		{"centrifugo, two subscriptions to one channel", func(c *Config) { c.Transport = transportCentrifugo; c.SubsPerConn = 2 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.tweak(&c)
			got, err := c.withDefaults()
			if (err == nil) != tc.ok {
				t.Fatalf("withDefaults: %v, want ok %v", err, tc.ok)
			}
			if err == nil && got.Transport == "" {
				t.Error("no transport after defaults")
			}
		})
	}
}
