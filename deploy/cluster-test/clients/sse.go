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
	"net/url"
	"strings"
	"sync"
	"time"
)

// sseHTTP is the HTTP client of the event-stream clients: no overall
// timeout (a stream lasts the run), bounded connection set-up.
func sseHTTP() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: 10 * time.Second,
		DisableCompression:    true,
		MaxConnsPerHost:       0,
	}}
}

// sseSession is one connection of an event-stream client: a stream per
// room (graphql-sse's distinct connections mode), each resumed from its
// last event by Last-Event-ID as an EventSource does. It ends when the
// first stream ends, and returns why, whether every stream was opened, and
// whether the client must stop.
func (c *client) sseSession(ctx context.Context) (reason string, acked, stop bool) {
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
	for n := 0; n < len(starts); n++ {
		select {
		case <-opened:
		case r := <-results:
			return r.reason, false, r.stop
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
	r := <-results
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

// stream opens one room's event stream after cursor and reads it until it
// ends. It signals opened once the stream is accepted.
func (c *client) stream(ctx context.Context, s *sub, conn int, cursor string, opened chan<- struct{}) (reason string, stop bool) {
	vars, _ := json.Marshal(map[string]any{"r": s.room.id})
	q := url.Values{"query": {subscription}, "variables": {string(vars)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"?"+q.Encode(), nil)
	if err != nil {
		c.rep.abort("client %d: building the stream request: %v", c.n, err)
		return "", true
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Herald-User", fmt.Sprintf("client-%d", c.n))
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
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
	opened <- struct{}{}
	return c.readStream(ctx, resp.Body, s, conn)
}

// readStream reads events until the stream ends. A stream silent for
// -read-timeout (no event, no keepalive comment) is taken as dead.
func (c *client) readStream(ctx context.Context, body io.ReadCloser, s *sub, conn int) (reason string, stop bool) {
	lines := make(chan string)
	readErr := make(chan error, 1)
	quit, readerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		br := bufio.NewReader(body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- strings.TrimSuffix(line, "\n"):
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
	var event, data string
	for {
		select {
		case line := <-lines:
			silence.Reset(c.cfg.readTimeout)
			switch {
			case line == "":
				if event != "" {
					if reason, stop, done := c.sseEvent(s, conn, event, data); done {
						return reason, stop
					}
				}
				event, data = "", ""
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
			case strings.HasPrefix(line, "data:"):
				data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			}
		case err := <-readErr:
			if ctx.Err() != nil {
				return "", false
			}
			if errors.Is(err, io.EOF) {
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

// sseEvent handles one event; done is set when the stream must end.
func (c *client) sseEvent(s *sub, conn int, event, data string) (reason string, stop, done bool) {
	switch event {
	case "next":
		var p struct {
			Data   json.RawMessage `json:"data"`
			Errors []gqlError      `json:"errors"`
		}
		_ = json.Unmarshal([]byte(data), &p)
		if len(p.Errors) > 0 && (len(p.Data) == 0 || string(p.Data) == "null") {
			return c.streamError(s, p.Errors[0])
		}
		c.deliver(s, conn, json.RawMessage(data))
		return "", false, false
	case "complete":
		c.rep.mu.Lock()
		c.rep.unexpComplete++
		c.rep.mu.Unlock()
		return "server completed " + s.room.label, false, true
	}
	c.rep.violation("client %d connection %d: unexpected event %q", c.n, conn, event)
	return "", false, false
}

// streamError handles an error result: permanent ones end the run,
// transient ones (a replica catching up, a slow consumer) reconnect.
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
