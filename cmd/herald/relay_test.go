package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald/server"
)

// TestNATSRelayErrors: the relay over NATS reports a token nobody holds
// and a message or an answer over NATS's max_payload as the server's
// errors, which it answers with 404, 413 and 502.
func TestNATSRelayErrors(t *testing.T) {
	a := startTestApp(t, testConfig(t, t.TempDir()))
	relay := natsRelay{a.relay}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := relay.Send(ctx, "AAAAAAAAAAAAAAAAAAAAAA", server.RelayMessage{Header: http.Header{}}); !errors.Is(err, server.ErrNoStreamHolder) {
		t.Fatalf("no holder: %v, want server.ErrNoStreamHolder", err)
	}
	stop, err := relay.Listen("BBBBBBBBBBBBBBBBBBBBBB", func(context.Context, server.RelayMessage) server.RelayMessage {
		return server.RelayMessage{}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	big := server.RelayMessage{Header: http.Header{}, Body: make([]byte, 2<<20)}
	if _, err := relay.Send(ctx, "BBBBBBBBBBBBBBBBBBBBBB", big); !errors.Is(err, server.ErrRelayMessageTooLarge) {
		t.Fatalf("a message over max_payload: %v, want server.ErrRelayMessageTooLarge", err)
	}
	stopBig, err := relay.Listen("CCCCCCCCCCCCCCCCCCCCCC", func(context.Context, server.RelayMessage) server.RelayMessage {
		return server.RelayMessage{Header: http.Header{}, Body: make([]byte, 2<<20)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopBig()
	_, err = relay.Send(ctx, "CCCCCCCCCCCCCCCCCCCCCC", server.RelayMessage{Header: http.Header{}})
	if !errors.Is(err, server.ErrRelayAnswerTooLarge) || errors.Is(err, server.ErrRelayMessageTooLarge) {
		t.Fatalf("an answer over max_payload: %v, want server.ErrRelayAnswerTooLarge alone", err)
	}
}
