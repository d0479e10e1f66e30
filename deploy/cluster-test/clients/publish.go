package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// httpClient speaks GraphQL over HTTP to base.
type httpClient struct {
	base string
	c    *http.Client
}

type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code string `json:"code"`
	} `json:"extensions"`
}

// attemptError is one failed attempt: retry says whether trying again can
// help, reason is a short class for the counters.
type attemptError struct {
	retry  bool
	reason string
	detail string
}

func (e *attemptError) Error() string { return e.reason + ": " + e.detail }

// permanent GraphQL error codes: the request itself is wrong, so retrying
// cannot help. Anything else (UNAVAILABLE, NOT_FOUND from a replica still
// catching up, internal errors) is retried.
var permanent = map[string]bool{
	"BAD_USER_INPUT": true, "FORBIDDEN": true, "UNAUTHENTICATED": true, "CONFLICT": true,
	"GRAPHQL_VALIDATION_FAILED": true, "GRAPHQL_PARSE_FAILED": true, "CURSOR_EXPIRED": true,
}

// do runs one GraphQL request as user and decodes data into out.
func (h *httpClient) do(ctx context.Context, user, query string, vars map[string]any, out any) *attemptError {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return &attemptError{reason: "request", detail: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if user != "" {
		req.Header.Set("X-Herald-User", user)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		return &attemptError{retry: ctx.Err() == nil, reason: classifyNetErr(err), detail: err.Error()}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &attemptError{retry: true, reason: classifyNetErr(err), detail: "read response: " + err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return &attemptError{retry: true, reason: "http " + strconv.Itoa(resp.StatusCode), detail: clip(string(raw), 200)}
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return &attemptError{retry: true, reason: "bad response", detail: fmt.Sprintf("%v: %s", err, clip(string(raw), 200))}
	}
	if len(r.Errors) > 0 {
		e := r.Errors[0]
		code := e.Extensions.Code
		if code == "" {
			code = "no code"
		}
		return &attemptError{retry: !permanent[code], reason: code, detail: e.Message}
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		return &attemptError{reason: "bad data", detail: fmt.Sprintf("%v: %s", err, clip(string(r.Data), 200))}
	}
	return nil
}

func classifyNetErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "transport error"
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// retry calls attempt until it succeeds, fails permanently, ctx ends or
// limit passes, with exponential backoff from 50ms to 1s. Every failed
// attempt is counted by reason.
func retry(ctx context.Context, limit time.Duration, rep *report, attempt func() *attemptError) (tries int, err error) {
	backoff := 50 * time.Millisecond
	began := time.Now()
	giveUp := began.Add(limit)
	var history []string // "<reason> after <duration>" of each failed attempt
	defer func() {
		if d := time.Since(began); tries > 1 || d > time.Second {
			rep.slowPost(d, history)
		}
	}()
	for {
		tries++
		t := time.Now()
		e := attempt()
		if e == nil {
			return tries, nil
		}
		history = append(history, fmt.Sprintf("%s after %s (%s)", e.reason, time.Since(t).Round(time.Millisecond), clip(e.detail, 120)))
		if ctx.Err() != nil {
			return tries, context.Cause(ctx)
		}
		if !e.retry {
			return tries, fmt.Errorf("rejected on attempt %d: %v", tries, e)
		}
		rep.countPostRetry(e.reason)
		if time.Now().Add(backoff).After(giveUp) {
			return tries, fmt.Errorf("still failing after %d attempts over %s; last: %v", tries, limit, e)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return tries, context.Cause(ctx)
		}
		backoff = min(2*backoff, time.Second)
	}
}

// createRoom creates a room named name. createRoom has no idempotency key:
// when an attempt fails after the room was stored (e.g. UNAVAILABLE "stored
// but not applied yet"), the retry gets CONFLICT, and the room is then
// looked up by its (unique, per-run) name.
func (h *httpClient) createRoom(ctx context.Context, name string, limit time.Duration, rep *report) (string, error) {
	var out struct{ CreateRoom struct{ ID string } }
	var id string
	failedBefore := false
	_, err := retry(ctx, limit, rep, func() *attemptError {
		e := h.do(ctx, "cluster-test", `mutation($n: String!) { createRoom(name: $n) { id } }`, map[string]any{"n": name}, &out)
		if e == nil {
			id = out.CreateRoom.ID
			return nil
		}
		if e.reason == "CONFLICT" && failedBefore {
			var rooms struct {
				Rooms struct{ Nodes []struct{ ID, Name string } }
			}
			if le := h.do(ctx, "", `{ rooms(first: 1000) { nodes { id name } } }`, nil, &rooms); le != nil {
				return le
			}
			for _, r := range rooms.Rooms.Nodes {
				if r.Name == name {
					id = r.ID
					return nil
				}
			}
			return &attemptError{retry: true, reason: "CONFLICT but not listed", detail: e.detail}
		}
		failedBefore = true
		return e
	})
	return id, err
}

type postedMessage struct {
	ID     string
	Text   string
	Cursor string
}

// post stores "<room>:<suffix>" in r, retrying until it is stored. The
// idempotencyKey makes a retry of a post that was stored return the first
// one instead of storing another.
func (h *httpClient) post(ctx context.Context, r *room, suffix string, limit time.Duration, rep *report) (postedMessage, error) {
	text := r.label + ":" + suffix
	var out struct{ PostMessage postedMessage }
	tries, err := retry(ctx, limit, rep, func() *attemptError {
		return h.do(ctx, "publisher-"+r.label,
			`mutation($r: ID!, $t: String!, $k: String) { postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id text cursor } }`,
			map[string]any{"r": r.id, "t": text, "k": "cluster-test-" + text}, &out)
	})
	if tries > 1 {
		rep.mu.Lock()
		rep.retriedPosts++
		rep.mu.Unlock()
	}
	if err != nil {
		return out.PostMessage, err
	}
	if out.PostMessage.Text != text || out.PostMessage.Cursor == "" {
		return out.PostMessage, fmt.Errorf("posted %q but the answer is message %q with text %q and cursor %q",
			text, out.PostMessage.ID, out.PostMessage.Text, out.PostMessage.Cursor)
	}
	return out.PostMessage, nil
}

func (h *httpClient) messageCount(ctx context.Context, roomID string) (int, error) {
	var out struct{ Room *struct{ MessageCount int } }
	if e := h.do(ctx, "", `query($id: ID!) { room(id: $id) { messageCount } }`, map[string]any{"id": roomID}, &out); e != nil {
		return 0, e
	}
	if out.Room == nil {
		return 0, errors.New("room not found")
	}
	return out.Room.MessageCount, nil
}

// publish posts r's messages 0, 1, ... at cfg.rate for cfg.publish, each
// retried until stored before the next. A steady schedule: a publisher that
// fell behind (retries) does not burst to catch up.
func publish(ctx context.Context, h *httpClient, r *room, cfg config, rep *report) {
	defer r.done.Store(true)
	interval := time.Duration(float64(time.Second) / cfg.rate)
	start := time.Now()
	next := start
	for n := 0; n < len(r.firstTry); n++ {
		now := time.Now()
		if now.Sub(start) >= cfg.publish {
			return
		}
		if wait := next.Sub(now); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		r.firstTry[n].Store(time.Now().UnixNano())
		if _, err := h.post(ctx, r, strconv.Itoa(n), cfg.postTimeout, rep); err != nil {
			if ctx.Err() == nil {
				rep.abort("publisher %s: post %s:%d: %v", r.label, r.label, n, err)
			}
			return
		}
		r.posted.Store(int64(n + 1))
	}
}
