package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestOperationAfterDrainIsNotRefused: an operation sent
// after a drain told the socket to go away is left unanswered, even one
// that would be refused (here, one that does not validate): graphql-ws's
// clients send every operation not completed again on the socket they
// reconnect with, whereas an error ends it for good (onSubscribe,
// wsops.go). Guards against the isLeaving check of onSubscribe dropped.
func TestOperationAfterDrainIsNotRefused(t *testing.T) {
	schema := newGatedSchema(t, 2)
	r := serveSchema(t, schema)
	c := r.dialTransport("u")
	c.subscribe("subscribe", "op", "mutation gate { bump }", nil)
	receive(t, schema.entered, 5*time.Second, "the mutation to be running")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- r.server.Drain(ctx, 0) }()
	waitFor(t, "the drain to tell the socket to go away", func() bool { return leavingSockets(r.server) == 1 })

	c.subscribe("subscribe", "late", "{ noSuchField }", nil)
	c.send(map[string]any{"type": "ping"}) // answered once the reader has handled "late"
	var late []string
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("no pong while the mutation runs: %v", err)
		}
		if f.ID == "late" {
			late = append(late, f.Type+" "+string(f.Payload))
		}
		if f.Type == "pong" {
			break
		}
	}
	close(schema.open)
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("socket ended with %v, want a close frame", err)
			}
			break
		}
		if f.ID == "late" {
			late = append(late, f.Type+" "+string(f.Payload))
		}
	}
	if len(late) > 0 {
		t.Errorf("the operation sent after the drain began was answered %v, want nothing (its client would not send it again)", late)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return")
	}
}
