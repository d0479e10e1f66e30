package server

import (
	"net/http"
	"time"
)

// answerChunk is how much of a plain answer's body is written under one
// write deadline (answerDeadline.write): the deadline is renewed before
// each part, so that it follows the client's progress. net.Conn.Write
// returns only once all of its bytes are in the kernel, so a client must
// take a whole part within Options.WriteTimeout to keep its answer coming:
// 4 KiB per WriteTimeout, about 410 B/s at the default 10 s, far below any
// link a person uses. A slow but reading client thus gets an answer of any
// size (a 30 MB query result on a poor mobile link takes minutes), while
// one that stops reading is dropped within WriteTimeout. A deadline for the
// whole body would instead cut every large answer to a client slower than
// its size per WriteTimeout; parts of 64 KiB cut a client that reads
// steadily, never pausing for long, but takes less than 64 KiB per
// WriteTimeout (6.5 KB/s at 10 s).
//
// Small parts cost writes, not deadlines: net/http hands a large Write to
// the connection (HTTP/1) or to its frame writer (HTTP/2) whole, so a
// 1 MB answer takes 256 of them rather than 16: over loopback on a small
// VM (BenchmarkAnswerWrite), 2.3 ms rather than 0.85 ms per MB over
// HTTP/1.1 and 5.7 ms rather than 2.6 ms over HTTP/2, little next to the
// 10 ms or more of producing a 1 MB answer; the renewals themselves cost
// nothing measurable. An answer of one part, the common case, is written
// as before: one deadline, one Write.
const answerChunk = 4 << 10

// answerDeadline bounds how long writing a plain answer may wait on its
// client: every answer that is not a WebSocket or an HTTP stream (those
// bound their own writes by the same Options.WriteTimeout), on /graphql
// and on the other routes. The public http.Server has no WriteTimeout,
// which would cut the long-lived streams, so without this a client that
// stops reading a large answer would hold the handler's goroutine, its
// connection and the whole encoded answer for as long as it liked.
//
// When a deadline passes the write fails, the handler returns and net/http
// drops the connection (over HTTP/2, resets the stream). net/http clears
// the connection's write deadline after each request, so none outlives its
// answer.
type answerDeadline struct {
	timeout time.Duration // Options.WriteTimeout
}

// extend gives what is written of the answer from now on, including what
// net/http flushes of it after the handler returns, timeout to reach the
// client. It reports false if w cannot be given a deadline: a writer that
// is no connection (httptest.ResponseRecorder, relayRecorder), with no
// client to wait on, or one whose connection is gone, whose writes fail
// anyway. Either way the answer is written as it would be without a bound.
func (d answerDeadline) extend(w http.ResponseWriter) bool {
	return http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d.timeout)) == nil
}

// write writes b, the answer's body (after its header), in parts of at
// most answerChunk bytes, each under a deadline of its own, set just
// before it is written (see answerChunk): a client is given up on only
// when one part has waited WriteTimeout on it. An answer of one part, the
// common case, costs one deadline.
func (d answerDeadline) write(w http.ResponseWriter, b []byte) (int, error) {
	if !d.extend(w) {
		return w.Write(b) // nothing to bound: no part needs its own deadline
	}
	n := 0
	for {
		part := b[n:]
		if len(part) > answerChunk {
			part = part[:answerChunk]
		}
		m, err := w.Write(part)
		n += m
		if err != nil || n == len(b) {
			return n, err
		}
		d.extend(w)
	}
}

// handler bounds the answers of h, a handler whose bodies this package
// does not write itself (GraphiQL's page and files, /metrics) and that
// never streams.
func (d answerDeadline) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(boundedWriter{ResponseWriter: w, deadline: d}, r)
	})
}

// boundedWriter is a ResponseWriter whose answer is written under
// answerDeadline's deadlines.
type boundedWriter struct {
	http.ResponseWriter
	deadline answerDeadline
}

// WriteHeader bounds the header too, for an answer that has no body (a
// HEAD, a 304): net/http flushes it after the handler returns.
func (w boundedWriter) WriteHeader(status int) {
	w.deadline.extend(w.ResponseWriter)
	w.ResponseWriter.WriteHeader(status)
}

func (w boundedWriter) Write(b []byte) (int, error) { return w.deadline.write(w.ResponseWriter, b) }

// Unwrap lets http.ResponseController reach the server's writer.
func (w boundedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
