package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"
)

// Subscribing over HTTP streams: each subscriber is one POST whose response
// streams its subscription's results, read by one goroutine through a
// bufio.Reader. Lines are parsed in place, so a result costs no allocation
// on the reading side (lineReader, sseParser, multipartParser).

// Transports.
const (
	transportWS        = "ws"
	transportSSE       = "sse"
	transportMultipart = "multipart"
)

// Accept headers: what graphql-sse's client sends, and what Apollo
// Client's HttpLink sends for a subscription.
const (
	acceptSSE       = "text/event-stream"
	acceptMultipart = `multipart/mixed;subscriptionSpec="1.0", application/json`
)

const (
	// streamBufferSize is the size of each stream's two read buffers (the
	// connection's, for the HTTP framing, and the body's, for lines): a
	// result of the default query is about 200 bytes.
	streamBufferSize = 4096
	// maxLineBytes bounds a line gathered beyond the buffer, so that a
	// server that never ends a line cannot take all the memory.
	maxLineBytes = 16 << 20
)

// errStreamEnded is returned by a parser when the server ended the stream
// in its protocol (complete, or the close delimiter).
var errStreamEnded = errors.New("the server ended the stream")

// openStream opens HTTP stream i: it dials from the stream's source
// address, POSTs the subscription and reads the response's head, all
// within the handshake timeout; then a goroutine reads the stream.
func (r *run) openStream(ctx context.Context, i int) (*conn, error) {
	room := i % r.cfg.Rooms
	req, err := r.streamRequest(i, room)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	nc, err := r.dialer(i).DialContext(hctx, "tcp", hostPort(req))
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	deadline, _ := hctx.Deadline()
	_ = nc.SetDeadline(deadline)
	// Cut the handshake short when ctx ends (an interrupt), not only at
	// its deadline.
	stop := context.AfterFunc(hctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(nc, streamBufferSize)
	resp, boundary, err := r.streamHead(nc, br, req)
	if !stop() && err == nil {
		err = fmt.Errorf("response head: %w", hctx.Err())
	}
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	c := &conn{idx: i, proto: r.cfg.Transport, stream: nc, subs: []*sub{r.newSub(room)}, done: make(chan struct{})}
	go r.readStream(c, resp.Body, boundary)
	return c, nil
}

// streamRequest is stream i's POST: the subscription to room, as user i.
func (r *run) streamRequest(i, room int) (*http.Request, error) {
	body, err := json.Marshal(map[string]any{"query": r.cfg.Query, "variables": map[string]any{"r": r.rooms[room].id}})
	if err != nil {
		return nil, fmt.Errorf("encoding the subscription: %w", err)
	}
	req, err := http.NewRequest(http.MethodPost, r.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("building the request: %w", err)
	}
	accept := acceptSSE
	if r.cfg.Transport == transportMultipart {
		accept = acceptMultipart
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	req.Header.Set("X-Herald-User", fmt.Sprintf("%s%d", r.cfg.UserPrefix, i))
	return req, nil
}

// hostPort is the address req goes to.
func hostPort(req *http.Request) string {
	if port := req.URL.Port(); port != "" {
		return req.URL.Host
	}
	return net.JoinHostPort(req.URL.Hostname(), "80")
}

// streamHead sends req on nc and reads the response's head from br. It
// returns the response, whose body reads the stream, and for multipart
// the boundary; a response that is no stream of the transport is an
// error carrying the start of its body.
func (r *run) streamHead(nc net.Conn, br *bufio.Reader, req *http.Request) (*http.Response, string, error) {
	if err := req.Write(nc); err != nil {
		return nil, "", fmt.Errorf("sending the request: %w", err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, "", fmt.Errorf("reading the response head: %w", err)
	}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	want := acceptSSE
	if r.cfg.Transport == transportMultipart {
		want = "multipart/mixed"
	}
	if resp.StatusCode == http.StatusOK && mt == want && (want == acceptSSE || params["boundary"] != "") {
		return resp, params["boundary"], nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return nil, "", fmt.Errorf("HTTP %d, %s: %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
}

// readStream is the stream's only reader goroutine: it parses the body
// until the stream ends or is closed, then closes the connection.
func (r *run) readStream(c *conn, body io.Reader, boundary string) {
	defer close(c.done)
	defer c.stream.Close()
	lr := &lineReader{br: bufio.NewReaderSize(body, streamBufferSize)}
	var err error
	if boundary != "" {
		err = r.readMultipart(c, lr, boundary)
	} else {
		err = r.readSSE(c, lr)
	}
	closing := c.closing.Load()
	if !closing {
		r.dropped.Add(1) // ended by the server (or broken), not by the load generator
	}
	switch {
	case closing, errors.Is(err, errStreamEnded):
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		r.errorf("closed", "conn %d (%s): the server ended the response: %v", c.idx, c.proto, err)
	default:
		r.errorf("read", "conn %d (%s): %v", c.idx, c.proto, err)
	}
}

// lineReader reads a stream's lines without allocating: a line is a slice
// of the buffer, valid until the next call, except a line longer than the
// buffer, which is gathered in long (kept for the next one).
type lineReader struct {
	br   *bufio.Reader
	long []byte
}

// next returns the next line without its line ending (LF or CRLF). The
// stream's end in the middle of a line is io.ErrUnexpectedEOF.
func (lr *lineReader) next() ([]byte, error) {
	line, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(lr.long) <= maxLineBytes {
			line, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, line...)
		}
		if err == nil && len(lr.long) > maxLineBytes {
			err = fmt.Errorf("a line over %d bytes", maxLineBytes)
		}
		line = lr.long
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ---- Server-Sent Events (graphql-sse, distinct connections mode) ----

// sseParser gathers an event stream's lines into events, by the
// EventSource rules for the fields graphql-sse uses (event, data; id is
// not needed here). A line ending in a lone CR is not recognised: Herald
// ends lines with LF.
type sseParser struct {
	event   []byte // the event's type so far
	data    []byte // its data lines so far, joined by LF
	hasData bool
}

// line takes one line; it reports whether it was a comment (Herald's
// keepalive) and, for a blank line, whether it ends an event.
func (p *sseParser) line(line []byte) (comment, dispatch bool) {
	if len(line) == 0 {
		return false, len(p.event) > 0 || p.hasData
	}
	colon := bytes.IndexByte(line, ':')
	switch {
	case colon == 0:
		return true, false
	case colon < 0:
		colon = len(line) // a field name alone: an empty value
	}
	name, value := line[:colon], line[min(colon+1, len(line)):]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "event":
		p.event = append(p.event[:0], value...)
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
		p.hasData = true
	}
	return false, false
}

// reset forgets the event dispatched.
func (p *sseParser) reset() {
	p.event, p.data, p.hasData = p.event[:0], p.data[:0], false
}

// readSSE reads an event stream: a "next" event is a result, "complete"
// ends the subscription, a comment is a keepalive.
func (r *run) readSSE(c *conn, lr *lineReader) error {
	var p sseParser
	s := c.subs[0]
	for {
		line, err := lr.next()
		if err != nil {
			return err
		}
		comment, dispatch := p.line(line)
		switch {
		case comment:
			r.kas.Add(1)
		case dispatch:
			ended := r.sseEvent(c, s, &p)
			p.reset()
			if ended {
				return errStreamEnded
			}
		}
	}
}

// sseEvent handles one event; true if it ended the subscription.
func (r *run) sseEvent(c *conn, s *sub, p *sseParser) bool {
	switch string(p.event) {
	case "next":
		r.result(c, s, p.data, time.Now())
		return false
	case "complete":
		s.dead.Store(true)
		if !c.closing.Load() {
			r.errorf("sub-complete", "conn %d (%s): the server completed the subscription", c.idx, c.proto)
		}
		return true
	}
	r.errorf("unexpected-event", "conn %d (%s): event %q: %.200s", c.idx, c.proto, p.event, p.data)
	return false
}

// ---- Apollo's multipart subscriptions ----

// multipartParser gathers a multipart/mixed body's lines into parts
// (RFC 2046: the CRLF before a delimiter line belongs to the delimiter).
type multipartParser struct {
	delimiter, close []byte // "--" boundary, and "--" boundary "--"
	state            multipartState
	body             []byte // the part's body so far
	lines            int    // lines in body
}

type multipartState int

const (
	mpPreamble multipartState = iota // before the first delimiter
	mpHeaders                        // a part's headers
	mpBody                           // a part's body
)

func newMultipartParser(boundary string) *multipartParser {
	return &multipartParser{delimiter: []byte("--" + boundary), close: []byte("--" + boundary + "--")}
}

// line takes one line; it returns a part's body when the line ends a
// part (valid until the next call), and whether the line closed the body.
func (p *multipartParser) line(line []byte) (part []byte, partDone, closed bool) {
	closing := bytes.Equal(line, p.close)
	delimiter := closing || bytes.Equal(line, p.delimiter)
	switch {
	case p.state == mpBody && delimiter:
		part, partDone = p.body, true
		p.state = mpHeaders
	case p.state == mpBody:
		if p.lines > 0 {
			p.body = append(p.body, '\r', '\n')
		}
		p.body = append(p.body, line...)
		p.lines++
	case delimiter:
		p.state = mpHeaders
	case p.state == mpHeaders && len(line) == 0:
		p.state = mpBody
		p.body, p.lines = p.body[:0], 0
	}
	return part, partDone, closing
}

// readMultipart reads a multipart subscription: a part with a payload is
// a result, {} a heartbeat, a part with errors and no payload ends the
// subscription, and so does the close delimiter.
func (r *run) readMultipart(c *conn, lr *lineReader, boundary string) error {
	p := newMultipartParser(boundary)
	s := c.subs[0]
	for {
		line, err := lr.next()
		if err != nil {
			return err
		}
		part, partDone, closed := p.line(line)
		if partDone {
			r.multipartPart(c, s, part)
		}
		if closed {
			if !s.dead.Swap(true) && !c.closing.Load() {
				r.errorf("sub-complete", "conn %d (%s): the server completed the subscription", c.idx, c.proto)
			}
			return errStreamEnded
		}
	}
}

var (
	partHeartbeat = []byte(`{}`)
	partPayload   = []byte(`{"payload":{`)
)

// multipartPart handles one part. Herald's parts are recognised by their
// first bytes; anything else is decoded.
func (r *run) multipartPart(c *conn, s *sub, part []byte) {
	switch {
	case bytes.Equal(part, partHeartbeat):
		r.kas.Add(1)
		return
	case bytes.HasPrefix(part, partPayload):
		r.result(c, s, part, time.Now())
		return
	}
	var m struct {
		Payload json.RawMessage `json:"payload"`
		Errors  json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(part, &m); err != nil {
		r.badFrame(c, "bad-part", part)
		return
	}
	switch {
	case len(m.Errors) > 0 && !bytes.Equal(m.Errors, []byte("null")):
		s.dead.Store(true)
		r.errorf("sub-error", "conn %d (%s): %.300s", c.idx, c.proto, part)
	case len(m.Payload) > 0 && !bytes.Equal(m.Payload, []byte("null")):
		r.result(c, s, part, time.Now())
	case len(m.Payload) == 0 && bytes.HasPrefix(bytes.TrimSpace(part), []byte("{")):
		r.kas.Add(1) // an object without payload or errors: a heartbeat
	default:
		r.badFrame(c, "bad-part", part)
	}
}
