package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestWriteRefusedStoresNothing: a write the server refuses outright,
// storing nothing, wraps ErrRefused (so that it is not taken for a write
// whose outcome is unknown) and the server's reason, and the key holds
// nothing of it; the directory's adds are refused the same way.
func TestWriteRefusedStoresNothing(t *testing.T) {
	tests := []struct {
		name string
		// server changes the NATS server's options; stream, if set, the
		// key's partition stream once the log is open.
		server func(*server.Options)
		stream func(*jetstream.StreamConfig)
		size   int // of each write
		// wrapped is what the error wraps besides ErrRefused.
		wrapped func(error) bool
		why     string
	}{
		{
			name:    "the server's store is full (insufficient resources)",
			server:  func(o *server.Options) { o.JetStreamMaxStore = 256 << 10 },
			size:    8 << 10,
			wrapped: apiErrorCode(jsErrCodeInsufficientResources),
			why:     "out of storage",
		},
		{
			name:    "larger than the stream's max_msg_size",
			stream:  func(c *jetstream.StreamConfig) { c.MaxMsgSize = 1 << 10 },
			size:    2 << 10,
			wrapped: apiErrorCode(jsErrCodeMessageTooLarge),
			why:     "message too large",
		},
		{
			name:    "larger than the server's max_payload",
			server:  func(o *server.Options) { o.MaxPayload = 4 << 10 },
			size:    8 << 10,
			wrapped: func(err error) bool { return errors.Is(err, nats.ErrMaxPayload) },
			why:     "message too large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATSWith(t, true, tt.server)
			l := openLog(t, Options{URLs: []string{url}})
			if tt.stream != nil {
				js := rawJS(t, url)
				name := l.lay.partStreams[l.PartitionOf(keyA)]
				s, err := js.Stream(testCtx(t, 5*time.Second), name)
				if err != nil {
					t.Fatal(err)
				}
				cfg := s.CachedInfo().Config
				tt.stream(&cfg)
				if _, err := js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
					t.Fatalf("update stream %s: %v", name, err)
				}
			}
			data := make([]byte, tt.size)
			var last uint64
			var err error
			for i := 0; i < 100; i++ {
				var res AppendResult
				res, err = l.AppendKeyed(testCtx(t, 5*time.Second), keyA, "posts", data, AppendOptions{ExpectLast: last})
				if err != nil {
					break
				}
				last = res.Seq
			}
			if err == nil {
				t.Fatalf("100 writes of %d bytes were all stored", tt.size)
			}
			checkRefused(t, err, tt.wrapped, tt.why, fmt.Sprintf("append to key %q", keyA))
			if got, kerr := l.KeyLastSeq(testCtx(t, 5*time.Second), keyA); kerr != nil || got != last {
				t.Errorf("key's last sequence after the refusal = %d, %v; want %d (nothing stored)", got, kerr, last)
			}
			if tt.stream != nil {
				return // the directory's stream has no such limit
			}
			_, err = l.AddToDirectory(testCtx(t, 5*time.Second), "refused", data)
			checkRefused(t, err, tt.wrapped, tt.why, `add key "refused" to the directory`)
		})
	}
}

// checkRefused checks that err is a refusal: it wraps ErrRefused, and what
// wrapped tells, and says what was refused, and why, once.
func checkRefused(t *testing.T, err error, wrapped func(error) bool, why, what string) {
	t.Helper()
	switch {
	case !errors.Is(err, ErrRefused):
		t.Fatalf("err = %v, want one wrapping ErrRefused", err)
	case errors.Is(err, ErrUnreachable) || errors.Is(err, ErrConflict):
		t.Errorf("err = %v wraps ErrUnreachable or ErrConflict too", err)
	case !wrapped(err):
		t.Errorf("err = %v does not wrap the server's reason", err)
	case !strings.Contains(err.Error(), "("+why+")") || strings.Count(err.Error(), what) != 1:
		t.Errorf("err = %q, want it to say %q once and why (%s)", err, what, why)
	}
}

// apiErrorCode tells whether an error wraps a JetStream API error of code.
func apiErrorCode(code jetstream.ErrorCode) func(error) bool {
	return func(err error) bool {
		var apiErr *jetstream.APIError
		return errors.As(err, &apiErr) && apiErr.ErrorCode == code
	}
}

// TestRefused pins which publish errors are refusals: the conflicts of an
// expected last sequence, and a duplicate still in process, are not.
func TestRefused(t *testing.T) {
	api := func(code jetstream.ErrorCode, descr string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: 503, ErrorCode: code, Description: descr})
	}
	tests := []struct {
		name string
		err  error
		why  string // "" = not a refusal
	}{
		{"insufficient resources", api(10023, "insufficient resources"), "out of storage"},
		{"account limits", api(10002, "resource limits exceeded for account"), "out of storage"},
		{"maximum bytes exceeded", api(10077, "maximum bytes exceeded"), "at a limit of the stream"},
		{"message too large", api(10054, "message size exceeds maximum allowed"), "message too large"},
		{"headers too large", api(10097, "header size exceeds maximum allowed of 64k"), "message too large"},
		{"sealed", api(10109, "invalid operation on sealed stream"), "the stream is sealed"},
		{"client's max_payload", fmt.Errorf("publish: %w", nats.ErrMaxPayload), "message too large"},
		{"wrong last sequence", api(10071, "wrong last sequence: 3"), ""},
		{"wrong last sequence, clustered", api(10164, "wrong last sequence"), ""},
		{"duplicate in process", api(10158, "duplicate message id is in process"), ""},
		{"no answer", fmt.Errorf("nats: %w", context.DeadlineExceeded), ""},
		{"no stream answered", jetstream.ErrNoStreamResponse, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, ok := refused(tt.err)
			if ok != (tt.why != "") || why != tt.why {
				t.Errorf("refused(%v) = %q, %v; want %q", tt.err, why, ok, tt.why)
			}
		})
	}
}
