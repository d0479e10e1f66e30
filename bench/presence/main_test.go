package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// presence adapts pubsub's presence to graph's, as cmd/herald does.
type presence struct{ p *pubsub.Presence }

func (c presence) Watch(ctx context.Context, topic string, fn func([]string)) (func(), error) {
	w, err := c.p.Watch(ctx, topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}
func (c presence) Signal(ctx context.Context, topic, user string) error {
	return c.p.Signal(ctx, topic, user)
}
func (c presence) WatchSignals(topic string, fn func(string)) (func(), error) {
	w, err := c.p.WatchSignals(topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}

// TestSmoke runs S8 small against an in-process Herald: every client
// hears presence, and the run measures this process's CPU.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	p, err := log.Presence(ctx, pubsub.PresenceOptions{Replica: "smoke"})
	if err != nil {
		t.Fatal(err)
	}
	svc := chat.NewService(log, chat.Options{Logger: quiet})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); _ = svc.Run(runCtx) }()
	srv, err := server.New(server.Options{
		Schema:          graph.NewSchemaWith(svc, log.Epoch(), graph.Options{Presence: presence{p}}),
		Presence:        p,
		Authenticator:   auth.Dev{},
		Readiness:       func(context.Context) []server.Check { return nil },
		ViewerDirective: graph.ViewerDirective,
		ResumeArgument:  graph.ResumeArgument,
		Logger:          quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		hs.Close()
		stop()
		<-ran
		_ = p.Close(sctx)
		_ = log.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := svc.Ready(); !ok; ok, _ = svc.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("read model did not catch up")
		}
		time.Sleep(5 * time.Millisecond)
	}

	rep, err := Run(t.Context(), Config{URL: hs.URL + "/graphql", Clients: 40, Rooms: 4, Duration: 2 * time.Second,
		Period: 500 * time.Millisecond, ServerPID: os.Getpid(), UserPrefix: "u", DialConcurrency: 8, SetupTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", rep)
	// Every message counted was sent during the churn: a change, or the
	// SNAPSHOT the batch after a rejoin becomes.
	if rep.Rejoins == 0 || rep.Messages < int64(rep.Clients) {
		t.Fatalf("no churn heard: %+v", rep)
	}
	// 10 clients a room, each leaving and coming back twice a second:
	// one batch per 250 ms window bounds what each hears at 4 batches of
	// at most 20 events a second.
	if rep.BusiestPerSecond > 80 {
		t.Fatalf("busiest client heard %.1f messages/s, above the bound", rep.BusiestPerSecond)
	}
	if rep.ServerCPUSeconds <= 0 {
		t.Fatalf("no CPU measured: %+v", rep)
	}
}
