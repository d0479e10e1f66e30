package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// postServer stores posts by idempotency key, as Herald does, and fails
// attempts as fail says (called with the attempt number of each message's
// text, from 1).
type postServer struct {
	mu       sync.Mutex
	attempts map[string]int    // by text
	keys     map[string][]any  // the idempotencyKey of every attempt, by text
	stored   map[string]string // key (or text#attempt when none) -> text
	order    []string          // texts stored, in order
	fail     func(text string, attempt int) string
	answer   func(text string) (string, string) // text and cursor of the answer
}

func newPostServer(t *testing.T, fail func(string, int) string) (*postServer, *httpClient) {
	t.Helper()
	ps := &postServer{attempts: map[string]int{}, keys: map[string][]any{}, stored: map[string]string{}, fail: fail}
	srv := httptest.NewServer(ps)
	t.Cleanup(srv.Close)
	return ps, &httpClient{base: srv.URL, c: srv.Client()}
}

func (ps *postServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Variables map[string]any `json:"variables"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	text, _ := req.Variables["t"].(string)
	key, hasKey := req.Variables["k"]
	ps.mu.Lock()
	ps.attempts[text]++
	attempt := ps.attempts[text]
	ps.keys[text] = append(ps.keys[text], key)
	storeKey := text + "#" + strconv.Itoa(attempt)
	if k, ok := key.(string); hasKey && ok && k != "" {
		storeKey = k
	}
	if _, dup := ps.stored[storeKey]; !dup {
		ps.stored[storeKey] = text
		ps.order = append(ps.order, text)
	}
	code := ""
	if ps.fail != nil {
		code = ps.fail(text, attempt)
	}
	answerText, cursor := text, "cur-"+text
	if ps.answer != nil {
		answerText, cursor = ps.answer(text)
	}
	ps.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if code != "" {
		// As Herald's "stored but not applied yet": the post may be stored.
		_, _ = io.WriteString(w, `{"data":null,"errors":[{"message":"try again","extensions":{"code":"`+code+`"}}]}`)
		return
	}
	b, _ := json.Marshal(map[string]any{"data": map[string]any{"postMessage": map[string]any{"id": "m", "text": answerText, "cursor": cursor}}})
	_, _ = w.Write(b)
}

// TestPostRetryKeepsIdempotencyKey: a retried post carries the same
// idempotencyKey as its first attempt, and different messages different
// keys, so that a post stored before its failure is not stored twice.
func TestPostRetryKeepsIdempotencyKey(t *testing.T) {
	ps, h := newPostServer(t, func(text string, attempt int) string {
		if attempt < 3 {
			return "UNAVAILABLE"
		}
		return ""
	})
	rep := testReport(t)
	r := &room{label: "r0", id: "A"}
	for _, suffix := range []string{"0", "1"} {
		msg, err := h.post(context.Background(), r, suffix, 10*time.Second, rep)
		if err != nil || msg.Text != "r0:"+suffix || msg.Cursor == "" {
			t.Fatalf("post %s = %+v, %v; want it stored", suffix, msg, err)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k0, k1 := ps.keys["r0:0"], ps.keys["r0:1"]
	if len(k0) != 3 || len(k1) != 3 {
		t.Fatalf("attempts %v; want 3 of each message", ps.keys)
	}
	for _, keys := range [][]any{k0, k1} {
		if keys[0] == nil || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
			t.Errorf("idempotency keys of one message's attempts %v; want one non-empty key repeated", keys)
		}
	}
	if k0[0] == k1[0] {
		t.Errorf("r0:0 and r0:1 share the idempotency key %v; want one key per message", k0[0])
	}
	if len(ps.order) != 2 || rep.retriedPosts != 2 {
		t.Errorf("stored %q, retriedPosts %d; want each message once and 2 retried posts", ps.order, rep.retriedPosts)
	}
}

// TestPostRejectsAnswerThatIsNotTheMessage: a post whose answer is not
// the message posted (another text, no cursor) fails instead of being
// counted.
func TestPostRejectsAnswerThatIsNotTheMessage(t *testing.T) {
	for _, tc := range []struct {
		name         string
		text, cursor string
	}{
		{"another text", "r0:7", "cur"},
		{"no cursor", "r0:0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, h := newPostServer(t, nil)
			ps.answer = func(string) (string, string) { return tc.text, tc.cursor }
			if _, err := h.post(context.Background(), &room{label: "r0", id: "A"}, "0", 5*time.Second, testReport(t)); err == nil {
				t.Errorf("post answered with text %q cursor %q succeeded; want an error", tc.text, tc.cursor)
			}
		})
	}
}

// TestPostGivesUpOnPermanentErrorsAndAtTheLimit: a permanent error is not
// retried, a transient one only until the limit.
func TestPostGivesUpOnPermanentErrorsAndAtTheLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     string
		limit    time.Duration
		attempts int // 0: more than one
		want     string
	}{
		{"permanent", "BAD_USER_INPUT", 5 * time.Second, 1, "rejected on attempt 1"},
		{"transient past the limit", "UNAVAILABLE", 400 * time.Millisecond, 0, "still failing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, h := newPostServer(t, func(string, int) string { return tc.code })
			// Far beyond the limit: a post that ignores its limit fails
			// with the context's error, not hangs.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := h.post(ctx, &room{label: "r0", id: "A"}, "0", tc.limit, testReport(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("post = %v; want an error saying %q", err, tc.want)
			}
			ps.mu.Lock()
			n := ps.attempts["r0:0"]
			ps.mu.Unlock()
			if tc.attempts != 0 && n != tc.attempts || tc.attempts == 0 && n < 2 {
				t.Errorf("%d attempts; want %d (0: several)", n, tc.attempts)
			}
		})
	}
}

// TestPublishCountsWhatWasStored: posted is exactly the number of
// messages stored, done is set when the publisher stops, and a message
// that cannot be stored stops the publisher with a violation (never
// skipped).
func TestPublishCountsWhatWasStored(t *testing.T) {
	cfg := config{rate: 100, publish: 300 * time.Millisecond, postTimeout: 300 * time.Millisecond}
	for _, tc := range []struct {
		name       string
		fail       func(string, int) string
		posted     int // -1: as many as were stored
		violations int
	}{
		{"all stored", nil, -1, 0},
		{"r0:3 rejected", func(text string, _ int) string {
			if text == "r0:3" {
				return "BAD_USER_INPUT"
			}
			return ""
		}, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, h := newPostServer(t, tc.fail)
			r := &room{label: "r0", id: "A", firstTry: make([]atomic.Int64, 1000)}
			rep := testReport(t)
			publish(context.Background(), h, r, cfg, rep)
			ps.mu.Lock()
			stored := len(ps.order)
			ps.mu.Unlock()
			want := tc.posted
			if want < 0 {
				want = stored
			}
			if got := int(r.posted.Load()); got != want || !r.done.Load() || rep.count != tc.violations {
				t.Errorf("posted %d, done %v, violations %q; want posted %d (server stored %d), done, %d violations",
					got, r.done.Load(), rep.violations, want, stored, tc.violations)
			}
			if stored < 4 {
				t.Errorf("the server stored only %d messages; want several for the count to mean something", stored)
			}
		})
	}
}
