package server

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"
)

// sendPanickingRelay is a relay whose Send panics.
type sendPanickingRelay struct{ Relay }

func (sendPanickingRelay) Send(context.Context, string, RelayMessage) (RelayMessage, error) {
	panic("the relay panicked")
}

// listenPanickingRelay is a relay whose Listen panics.
type listenPanickingRelay struct{ Relay }

func (listenPanickingRelay) Listen(string, RelayHandler) (func(), error) {
	panic("the relay panicked")
}

// TestRelayPanicOnOpenReleasesItsAdmission: a single-connection stream
// whose claim over the relay (Options.Relay, the embedder's) panics is
// answered 502 and gives its place under MaxConnections back, as one
// whose credentials check panics does: otherwise such opens would fill
// the replica until every socket and stream got 503.
func TestRelayPanicOnOpenReleasesItsAdmission(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxConnections = 1
		o.Relay = sendPanickingRelay{NewLocalRelay()}
	})
	for i := range 2 {
		token, err := newStreamToken() // held by no replica: claimed over the relay
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.http.URL+"/graphql", nil)
		req.Header.Set("Accept", mediaEventStream)
		req.Header.Set(streamTokenHeader, token)
		req.Header.Set("X-Herald-User", "ann")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("open %d, whose claim panics: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("open %d, whose claim panics: %d %s; want 502", i, resp.StatusCode, b)
		}
	}
	token := r.reserve("ann")
	c, status, body := r.openSSE(sseRequest{method: http.MethodGet,
		header: http.Header{streamTokenHeader: {token}, "X-Herald-User": {"ann"}}})
	if c == nil {
		t.Fatalf("a stream on a replica with nothing open, after 2 opens whose relay panicked: %d %s", status, body)
	}
	_ = c.resp.Body.Close()
}

// TestRelayPanicOnReserveForgetsTheReservation: a reservation whose
// listening on the relay panics is refused and not held: held, it would
// have no expiry and count against the user's reservations until the
// replica restarts.
func TestRelayPanicOnReserveForgetsTheReservation(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Relay = listenPanickingRelay{NewLocalRelay()} })
	status, body := r.do(singleReq{method: http.MethodPut, user: "ann", timeout: 5 * time.Second})
	if status != http.StatusServiceUnavailable {
		t.Errorf("a reservation whose listening panics: %d %s; want 503", status, body)
	}
	s := r.server.sseSingle
	s.mu.Lock()
	held, reserved, byAnn := len(s.held), s.reserved, s.reservedBy["ann"]
	s.mu.Unlock()
	if held != 0 || reserved != 0 || byAnn != 0 {
		t.Fatalf("after a reservation whose listening panicked: %d held, %d reserved (%d by ann), want none", held, reserved, byAnn)
	}
}
