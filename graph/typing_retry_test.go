package graph

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// flakyPresence is a Presence whose Signal fails while fail is set,
// and records the signals it passed on.
type flakyPresence struct {
	mu   sync.Mutex
	fail bool
	sent []string
}

func (p *flakyPresence) Watch(context.Context, string, func([]string)) (func(), error) {
	return func() {}, nil
}

func (p *flakyPresence) WatchSignals(string, func(string)) (func(), error) {
	return func() {}, nil
}

func (p *flakyPresence) Signal(_ context.Context, topic, user string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail {
		return errors.New("nats: connection closed")
	}
	p.sent = append(p.sent, user)
	return nil
}

// TestSetTypingRetryAfterFailure: a setTyping whose signal could not
// be sent fails with UNAVAILABLE and tells the client to retry
// ("setTyping: ...; retry"; README: UNAVAILABLE means "retry"). The retry
// must then send the signal (or fail again): a call that was refused did
// not show the user typing, so it cannot count as the one call per
// TypingEvery that is passed on.
//
// The throttle used to record the failed call before the signal was sent,
// so a retry within TypingEvery (1 s) answered true and sent nothing: the
// client was told the user was shown typing, and nobody saw it.
func TestSetTypingRetryAfterFailure(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	room, err := svc.CreateRoom(ctx, alice, "typing")
	if err != nil {
		t.Fatal(err)
	}
	p := &flakyPresence{fail: true}
	r := &Resolver{chat: svc, epoch: 1, presence: p, typing: newTypingThrottle(time.Second, typingKeep)}
	actx := auth.NewContext(ctx, auth.Identity{UserID: "alice"})

	ok, err := r.Mutation().SetTyping(actx, room.ID)
	chatErr, isChat := errors.AsType[*chat.Error](err)
	if ok || !isChat || chatErr.Code != chat.CodeUnavailable {
		t.Fatalf("setTyping with NATS failing = %v, %v; want UNAVAILABLE", ok, err)
	}

	// NATS is back; the client retries at once, as told.
	p.mu.Lock()
	p.fail = false
	p.mu.Unlock()
	ok, err = r.Mutation().SetTyping(actx, room.ID)
	p.mu.Lock()
	sent := len(p.sent)
	p.mu.Unlock()
	if ok && err == nil && sent == 0 {
		t.Fatalf("the retry of a failed setTyping answered true but sent no signal; want the signal sent")
	}
	if err != nil || !ok || sent != 1 {
		t.Fatalf("retry = %v, %v with %d signals sent; want true and 1 signal", ok, err, sent)
	}
}
