package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// streamHTTP is the HTTP client of the HTTP-stream clients: no overall
// timeout (a stream lasts the run), bounded connection set-up.
func streamHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
		MaxConnsPerHost:       0,
	}}
}

// streamSession is one connection of an HTTP-stream client: a stream per
// room (graphql-sse's distinct connections mode, or an Apollo multipart
// subscription per room), each resumed after the last event it delivered.
// It ends when the first stream ends, and returns why, whether every
// stream was opened, and whether the client must stop.
func (c *client) streamSession(ctx context.Context) (reason string, acked, stop bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.connects++
	conn := c.connects
	type start struct {
		s      *sub
		cursor string
	}
	var starts []start
	for _, s := range c.subs {
		cursor := s.cursor
		if conn > 1 && !c.cfg.resume {
			cursor = ""
		}
		starts = append(starts, start{s, cursor})
	}
	c.mu.Unlock()

	type result struct {
		reason string
		stop   bool
	}
	results := make(chan result, len(starts))
	opened := make(chan struct{}, len(starts))
	var wg sync.WaitGroup
	for _, st := range starts {
		wg.Go(func() {
			reason, stop := c.stream(ctx, st.s, conn, st.cursor, opened)
			results <- result{reason, stop}
		})
	}
	defer func() {
		cancel() // ends the other streams
		wg.Wait()
	}()

	began := time.Now()
	var first *result // a stream's that ended while the others opened
	for n := 0; n < len(starts) && first == nil; n++ {
		select {
		case <-opened:
		case r := <-results:
			// A stream signals opened before it ends, so one that opened
			// and ended at once has both ready and select takes either:
			// the session was up if every stream has signalled.
			if n+len(opened) < len(starts) {
				return r.reason, false, r.stop
			}
			first = &r
		}
	}
	if d := time.Since(began); d > 3*time.Second {
		logf("client %d connection %d: its %d streams took %s to open", c.n, conn, len(starts), d.Round(time.Millisecond))
	}
	c.markConnected(conn)
	defer func() {
		c.mu.Lock()
		c.lastEnd = time.Now()
		c.mu.Unlock()
	}()
	if first == nil {
		r := <-results
		first = &r
	}
	r := *first
	if ctx.Err() != nil && r.reason == "" {
		return "", true, true
	}
	return r.reason, true, r.stop
}

// markConnected records that connection conn is up, and how long the
// client was without one, from the end of the last working one.
func (c *client) markConnected(conn int) {
	c.mu.Lock()
	c.connected = true
	if conn > 1 {
		if d := time.Since(c.lastEnd); d > c.maxOutage {
			c.maxOutage = d
		}
	}
	c.mu.Unlock()
	c.everConnected.Store(true)
}

// framing is what differs between the HTTP-stream transports once a
// stream is open: how its bytes divide into frames (an event stream's
// lines, a multipart response's parts) and what each frame means. next
// runs on readFrames' reader goroutine and handle on its caller's, so the
// two must share no state.
type framing interface {
	// next reads one frame: io.EOF when the server closed the stream
	// with nothing more to say, errCompleted when the protocol itself
	// said the stream is over, any other error when it broke.
	next(br *bufio.Reader) (string, error)
	// handle judges one frame; done is set when the stream must end.
	handle(frame string) (reason string, stop, done bool)
}

// errCompleted is next's error after a stream's own end marker.
var errCompleted = errors.New("the server ended the stream")

// stream opens one room's stream after cursor and reads it until it ends.
// It signals opened once the stream is accepted.
func (c *client) stream(ctx context.Context, s *sub, conn int, cursor string, opened chan<- struct{}) (reason string, stop bool) {
	var req *http.Request
	var err error
	if c.kind == overMultipart {
		req, err = c.multipartRequest(ctx, s, cursor)
	} else {
		req, err = c.sseRequest(ctx, s, cursor)
	}
	if err != nil {
		c.rep.abort("client %d: building the stream request: %v", c.n, err)
		return "", true
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "stream: " + classifyNetErr(err), false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Sprintf("stream: http %d %s", resp.StatusCode, strings.TrimSpace(string(body))), false
	}
	var f framing = &sseFraming{c: c, s: s, conn: conn}
	if c.kind == overMultipart {
		if err := checkMultipart(resp); err != nil {
			c.rep.abort("client %d room %s: subscription after cursor %q not answered as a multipart stream: %v", c.n, s.room.label, cursor, err)
			return "", true
		}
		f = &multipartFraming{c: c, s: s, conn: conn}
	}
	opened <- struct{}{}
	return c.readFrames(ctx, resp.Body, s, f)
}

// readFrames reads frames until the stream ends. A stream silent for
// -read-timeout (no event, no keepalive) is taken as dead.
func (c *client) readFrames(ctx context.Context, body io.ReadCloser, s *sub, f framing) (reason string, stop bool) {
	frames := make(chan string)
	readErr := make(chan error, 1)
	quit, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReader(body)
		for {
			frame, err := f.next(br)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case frames <- frame:
			case <-quit:
				return
			}
		}
	}()
	defer func() {
		close(quit)
		_ = body.Close() // ends a read in progress
		<-readerDone
	}()
	silence := time.NewTimer(c.cfg.readTimeout)
	defer silence.Stop()
	for {
		select {
		case frame := <-frames:
			silence.Reset(c.cfg.readTimeout)
			if reason, stop, done := f.handle(frame); done {
				return reason, stop
			}
		case err := <-readErr:
			switch {
			case ctx.Err() != nil:
				return "", false
			case errors.Is(err, errCompleted):
				return c.completed(s)
			case errors.Is(err, io.EOF):
				return "stream ended", false
			}
			return "stream: " + classifyNetErr(err), false
		case <-silence.C:
			return "silent past -read-timeout", false
		case <-ctx.Done():
			return "", false
		}
	}
}

// result handles one GraphQL result of s's subscription: an error with no
// data ends the stream (the subscription ended with it), anything else is
// an event to judge.
func (c *client) result(s *sub, conn int, raw json.RawMessage) (reason string, stop, done bool) {
	var p struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	_ = json.Unmarshal(raw, &p)
	if len(p.Errors) > 0 && (len(p.Data) == 0 || string(p.Data) == "null") {
		return c.streamError(s, p.Errors[0])
	}
	c.deliver(s, conn, raw)
	return "", false, false
}

// completed counts a stream the server completed though nobody asked it
// to; the client resubscribes.
func (c *client) completed(s *sub) (reason string, stop bool) {
	c.rep.mu.Lock()
	c.rep.unexpComplete++
	c.rep.mu.Unlock()
	return "server completed " + s.room.label, false
}

// streamError handles an error that ends a stream: permanent ones end the
// run, transient ones (a replica catching up, a slow consumer, a drain)
// reconnect.
func (c *client) streamError(s *sub, e gqlError) (reason string, stop, done bool) {
	code := e.Extensions.Code
	if permanent[code] || code == "" {
		c.mu.Lock()
		cursor := s.cursor
		c.mu.Unlock()
		c.rep.abort("client %d room %s: stream after cursor %q rejected: %s %s", c.n, s.room.label, cursor, code, e.Message)
		return "", true, true
	}
	c.rep.mu.Lock()
	c.rep.subErrors[code]++
	c.rep.mu.Unlock()
	return "stream error " + code, false, true
}
