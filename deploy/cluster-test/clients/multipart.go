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
	"net/http"
	"net/textproto"
	"strings"
)

// multipartAccept is the Accept header of Apollo Client's HttpLink for a
// subscription: Apollo's multipart subscription protocol, or plain JSON
// for what is answered before a stream starts.
const multipartAccept = `multipart/mixed;subscriptionSpec="1.0", application/json`

// multipartRequest subscribes to one room as Apollo Client's HttpLink
// does: a POST of the operation. Unlike an EventSource, nothing resumes
// by itself: the client sets the subscription's $after to the last cursor
// it received, as the README's recipe for HttpLink does.
func (c *client) multipartRequest(ctx context.Context, s *sub, cursor string) (*http.Request, error) {
	vars := map[string]any{"r": s.room.id}
	if cursor != "" {
		vars["after"] = cursor
	}
	body, err := json.Marshal(map[string]any{"query": subscription, "variables": vars})
	if err != nil {
		return nil, fmt.Errorf("encode the operation: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", multipartAccept)
	req.Header.Set("X-Herald-User", fmt.Sprintf("client-%d", c.n))
	return req, nil
}

// multipartBoundary is the boundary Herald (like Apollo's router) uses.
const multipartBoundary = "graphql"

// checkMultipart checks that a 200 answer to a subscription is a
// multipart stream with Herald's boundary.
func checkMultipart(resp *http.Response) error {
	ct := resp.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return fmt.Errorf("Content-Type %q: %w", ct, err)
	case mt != "multipart/mixed" || params["boundary"] != multipartBoundary:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("Content-Type %q, body %s", ct, clip(string(body), 300))
	}
	return nil
}

// maxPart bounds one part, so that a stream that never delimits a part
// cannot grow the client without bound.
const maxPart = 1 << 20

// multipartFraming reads Apollo's multipart subscription protocol: parts
// between delimiter lines, as RFC 2046 reads them (the CRLF before a
// delimiter belongs to it), each a JSON object: {"payload": <result>}, a
// heartbeat {}, or {"payload":null,"errors":[…]} when the transport ends
// the stream (SLOW_CONSUMER, SHUTTING_DOWN from a draining replica).
type multipartFraming struct {
	c    *client
	s    *sub
	conn int

	// next's state (the reader goroutine's only).
	began  bool // the preamble before the first delimiter was read
	closed bool // the close delimiter was read
}

func (f *multipartFraming) next(br *bufio.Reader) (string, error) {
	for !f.closed {
		part, err := f.upToDelimiter(br)
		if err != nil {
			return "", err
		}
		if f.began {
			return part, nil
		}
		f.began = true // what precedes the first delimiter is no part
	}
	return "", errCompleted
}

// upToDelimiter reads up to and including the next delimiter line and
// returns what came before it. A body that ends before the close
// delimiter was cut: io.ErrUnexpectedEOF.
func (f *multipartFraming) upToDelimiter(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() <= maxPart {
		line, err := br.ReadString('\n')
		if errors.Is(err, io.EOF) {
			return "", io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", err
		}
		switch strings.TrimRight(line, " \t\r\n") {
		case "--" + multipartBoundary + "--":
			f.closed = true
			return strings.TrimSuffix(b.String(), "\r\n"), nil
		case "--" + multipartBoundary:
			return strings.TrimSuffix(b.String(), "\r\n"), nil
		}
		b.WriteString(line)
	}
	return "", fmt.Errorf("a multipart part longer than %d bytes", maxPart)
}

func (f *multipartFraming) handle(part string) (reason string, stop, done bool) {
	body, err := jsonPartBody(part)
	if err != nil {
		f.c.rep.violation("client %d room %s connection %d: %v", f.c.n, f.s.room.label, f.conn, err)
		return "", false, false
	}
	var p struct {
		Payload json.RawMessage `json:"payload"`
		Errors  []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		f.c.rep.violation("client %d room %s connection %d: a part that is no JSON object (%v): %s", f.c.n, f.s.room.label, f.conn, err, clip(body, 300))
		return "", false, false
	}
	noPayload := len(p.Payload) == 0 || string(p.Payload) == "null"
	switch {
	case noPayload && len(p.Errors) > 0:
		return f.c.streamError(f.s, p.Errors[0])
	case noPayload && strings.TrimSpace(body) == "{}":
		return "", false, false // a heartbeat
	case noPayload:
		f.c.rep.violation("client %d room %s connection %d: a part with neither payload nor errors: %s", f.c.n, f.s.room.label, f.conn, clip(body, 300))
		return "", false, false
	}
	return f.c.result(f.s, f.conn, p.Payload)
}

// jsonPartBody splits a part into its header and body, and checks that
// the header says JSON.
func jsonPartBody(part string) (string, error) {
	r := bufio.NewReader(strings.NewReader(part))
	h, err := textproto.NewReader(r).ReadMIMEHeader()
	if err != nil {
		return "", fmt.Errorf("a part whose header does not parse (%v): %q", err, clip(part, 300))
	}
	ct := h.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return "", fmt.Errorf("a part with Content-Type %q: %q", ct, clip(part, 300))
	}
	rest, _ := io.ReadAll(r)
	return string(rest), nil
}
