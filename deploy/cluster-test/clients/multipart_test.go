package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// The layout server/multipart.go writes: each part followed by its
// delimiter, the end a heartbeat and the close delimiter.
const (
	partHead  = "Content-Type: application/json; charset=utf-8\r\n\r\n"
	delimiter = "\r\n--graphql\r\n"
	closeLine = "\r\n--graphql--\r\n"
)

func resultPart(text, cursor string) string {
	return partHead + `{"payload":{"data":{"messagePosted":{"text":"` + text + `"}},"extensions":{"cursor":"` + cursor + `"}}}` + delimiter
}

func TestMultipartFraming(t *testing.T) {
	results := resultPart("r0:0", "c0") + partHead + "{}" + delimiter + resultPart("r0:1", "c1")
	for _, tc := range []struct {
		name, stream, reason string
		complete, errors     int
	}{
		{"completed", delimiter + results + partHead + "{}" + closeLine, "server completed r0", 1, 0},
		{"transport error", delimiter + results + partHead + `{"payload":null,"errors":[{"message":"draining","extensions":{"code":"SHUTTING_DOWN"}}]}` + closeLine,
			"stream error SHUTTING_DOWN", 0, 1},
		{"subscription error", delimiter + results + partHead + `{"payload":{"data":null,"errors":[{"message":"later","extensions":{"code":"UNAVAILABLE"}}]}}` + delimiter,
			"stream error UNAVAILABLE", 0, 1},
		{"cut in a part", delimiter + results + partHead + `{"payl`, "stream: connection closed", 0, 0},
		{"cut after a delimiter", delimiter + results, "stream: connection closed", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := testClient(t)
			// One byte at a time: a frame must not depend on how the
			// bytes arrive.
			body := io.NopCloser(iotest.OneByteReader(strings.NewReader(tc.stream)))
			reason, stop := c.readFrames(context.Background(), body, s, &multipartFraming{c: c, s: s, conn: 1})
			if reason != tc.reason || stop {
				t.Errorf("readFrames = %q, stop %v; want %q", reason, stop, tc.reason)
			}
			if s.next != 2 || s.cursor != "c1" {
				t.Errorf("after the stream: next %d, cursor %q; want 2, c1", s.next, s.cursor)
			}
			if c.rep.count != 0 || c.rep.unexpComplete != tc.complete || len(c.rep.subErrors) != tc.errors {
				t.Errorf("report: violations %v, completions %d, errors %v", c.rep.violations, c.rep.unexpComplete, c.rep.subErrors)
			}
		})
	}
}

func TestMultipartFramingRejects(t *testing.T) {
	for name, part := range map[string]string{
		"not JSON":      "Content-Type: text/plain\r\n\r\nhello" + delimiter,
		"no payload":    partHead + `{"data":{}}` + delimiter,
		"not an object": partHead + `[1]` + delimiter,
	} {
		t.Run(name, func(t *testing.T) {
			c, s := testClient(t)
			body := io.NopCloser(strings.NewReader(delimiter + part))
			c.readFrames(context.Background(), body, s, &multipartFraming{c: c, s: s, conn: 1})
			if c.rep.count != 1 {
				t.Errorf("violations %v; want one", c.rep.violations)
			}
		})
	}
}

// TestCheckMultipartWantsHeraldsBoundary: only multipart/mixed with
// Herald's boundary is read as a multipart stream; anything else would be
// split at the wrong lines.
func TestCheckMultipartWantsHeraldsBoundary(t *testing.T) {
	for ct, ok := range map[string]bool{
		`multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`: true,
		`multipart/mixed; boundary="-"`:                               false,
		`multipart/mixed`:                                             false,
		`application/json; boundary="graphql"`:                        false,
		`application/json`:                                            false,
	} {
		resp := &http.Response{Header: http.Header{"Content-Type": {ct}}, Body: io.NopCloser(strings.NewReader(`{"errors":[]}`))}
		if err := checkMultipart(resp); (err == nil) != ok {
			t.Errorf("checkMultipart(%q) = %v; want ok %v", ct, err, ok)
		}
	}
}

// testReport is an empty report whose fatal cancels nothing the test
// waits on.
func testReport(t *testing.T) *report {
	t.Helper()
	_, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	return &report{fatal: cancel, postRetries: map[string]int{}, subErrors: map[string]int{}}
}

func testClient(t *testing.T) (*client, *sub) {
	t.Helper()
	rep := testReport(t)
	r := &room{label: "r0"}
	c := &client{n: 0, cfg: config{readTimeout: 5 * time.Second}, rep: rep, closes: map[string]int{}}
	s := &sub{room: r}
	c.subs = []*sub{s}
	return c, s
}
