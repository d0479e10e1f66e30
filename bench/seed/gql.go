package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBatch bounds the aliased mutations in one request. Herald refuses an
// operation whose complexity (each field 1 plus its selections) exceeds
// --max-complexity, 10000 by default; a post selecting its id costs 2.
const maxBatch = 200

// dedupWindow is Herald's idempotency window (its stream's duplicate
// window): a retried post is stored once only if it is retried within it.
// Retrying stops well inside it.
const dedupWindow = 2 * time.Minute

// quote returns s as a GraphQL string literal. JSON's string escapes (\" \\
// \n \uXXXX ...) are all valid GraphQL escapes.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Post is one message of a batch.
type Post struct {
	Text string
	Key  string // idempotency key; empty for none
}

// postBatch builds one request posting every post to roomID, in order, as
// aliases m0, m1, ...
func postBatch(roomID string, posts []Post) request {
	var b strings.Builder
	b.WriteString("mutation($r: ID!) {")
	for i, p := range posts {
		fmt.Fprintf(&b, " m%d: postMessage(roomId: $r, text: %s", i, quote(p.Text))
		if p.Key != "" {
			fmt.Fprintf(&b, ", idempotencyKey: %s", quote(p.Key))
		}
		b.WriteString(") { id }")
	}
	b.WriteString(" }")
	return request{Query: b.String(), Variables: map[string]any{"r": roomID}, Fields: len(posts), Prefix: "m"}
}

// createBatch builds one request creating a room per name, as aliases c0,
// c1, ...
func createBatch(names []string) request {
	var b strings.Builder
	b.WriteString("mutation {")
	for i, n := range names {
		fmt.Fprintf(&b, " c%d: createRoom(name: %s) { id }", i, quote(n))
	}
	b.WriteString(" }")
	return request{Query: b.String(), Fields: len(names), Prefix: "c"}
}

// request is one GraphQL operation whose root fields are aliased
// <Prefix>0 .. <Prefix><Fields-1>, each selecting { id }.
type request struct {
	Query     string         `json:"query"`
	Variables map[string]any `json:"variables,omitempty"`
	Fields    int            `json:"-"`
	Prefix    string         `json:"-"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// callError is a failed request; Transient ones may be retried.
type callError struct {
	Transient bool
	Code      string // GraphQL extensions.code, when there is one
	Msg       string
}

func (e *callError) Error() string {
	if e.Code != "" {
		return e.Msg + " (" + e.Code + ")"
	}
	return e.Msg
}

// transientCodes are the GraphQL error codes worth retrying: the log was
// unavailable, a post that may or may not have been stored (a retry with
// the same idempotency key stores it once), a rate limit, or an outcome
// the replica no longer knew.
var transientCodes = map[string]bool{"UNAVAILABLE": true, "OUTCOME_UNKNOWN": true, "RATE_LIMITED": true, "INTERNAL": true}

// parseResponse checks a response to req and returns the id of each
// aliased field in order.
func parseResponse(status int, body []byte, req request) ([]string, error) {
	var res struct {
		Data   map[string]*struct{ ID string } `json:"data"`
		Errors []gqlError                      `json:"errors"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, &callError{Transient: status >= 500 || status == http.StatusTooManyRequests,
			Msg: fmt.Sprintf("HTTP %d: %.200s", status, body)}
	}
	if len(res.Errors) > 0 {
		e := res.Errors[0]
		transient := true
		for _, e := range res.Errors {
			transient = transient && transientCodes[e.code()]
		}
		return nil, &callError{Transient: transient, Code: e.code(),
			Msg: fmt.Sprintf("HTTP %d: %s (%d errors)", status, e.Message, len(res.Errors))}
	}
	if status != http.StatusOK {
		return nil, &callError{Transient: status >= 500 || status == http.StatusTooManyRequests, Msg: fmt.Sprintf("HTTP %d", status)}
	}
	ids := make([]string, req.Fields)
	for i := range ids {
		f := res.Data[req.Prefix+strconv.Itoa(i)]
		if f == nil || f.ID == "" {
			return nil, &callError{Msg: fmt.Sprintf("HTTP %d: no id for %s%d: %.200s", status, req.Prefix, i, body)}
		}
		ids[i] = f.ID
	}
	return ids, nil
}

// client posts GraphQL requests to Herald as one dev-auth user.
type client struct {
	url     string
	user    string
	http    *http.Client
	retries int
	// attempt bounds one HTTP attempt.
	attempt time.Duration
}

func newClient(url, user string, inflight, retries int, attempt time.Duration) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        inflight + 4,
		MaxIdleConnsPerHost: inflight + 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{url: url, user: user, http: &http.Client{Transport: tr}, retries: retries, attempt: attempt}
}

// once sends req once.
func (c *client) once(ctx context.Context, req request) ([]string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("X-Herald-User", c.user)
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, &callError{Transient: true, Msg: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, &callError{Transient: true, Msg: "reading the response: " + err.Error()}
	}
	return parseResponse(resp.StatusCode, b, req)
}

// backoff is the wait before retry n (1, 2, ...): 100 ms doubling, at most
// 2 s, with up to 50% jitter.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond << min(n-1, 5)
	d = min(d, 2*time.Second)
	return d/2 + rand.N(d/2+1)
}

// do sends req, retrying transient failures up to c.retries times, all
// within the de-duplication window of the first attempt. It returns the
// ids and how many retries it took.
func (c *client) do(ctx context.Context, req request) ([]string, int, error) {
	first := time.Now()
	for n := 0; ; n++ {
		ids, err := c.once(ctx, req)
		if err == nil {
			return ids, n, nil
		}
		var ce *callError
		transient := errors.As(err, &ce) && ce.Transient
		if !transient || n >= c.retries || ctx.Err() != nil {
			if transient && n >= c.retries {
				err = fmt.Errorf("%w (gave up after %d retries)", err, n)
			}
			return nil, n, err
		}
		wait := backoff(n + 1)
		if time.Since(first)+wait+c.attempt > dedupWindow-10*time.Second {
			return nil, n, fmt.Errorf("%w (no retry: it could fall outside the %s de-duplication window)", err, dedupWindow)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, n, fmt.Errorf("%w (interrupted: %v)", err, ctx.Err())
		}
	}
}

// query sends a read-only operation once and returns its data.
func (c *client) query(ctx context.Context, query string, vars map[string]any) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithTimeout(ctx, c.attempt)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return nil, fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	if len(res.Errors) > 0 {
		return nil, fmt.Errorf("HTTP %d: %s (%s)", resp.StatusCode, res.Errors[0].Message, res.Errors[0].code())
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return res.Data, nil
}
