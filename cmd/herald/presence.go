package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// clusterPresence is graph's Presence over pubsub's: a room's topic is
// its ID. The server reports to the same pubsub.Presence who is present
// through this replica (server.Options.Presence).
type clusterPresence struct{ p *pubsub.Presence }

var (
	_ graph.Presence  = clusterPresence{}
	_ server.Presence = (*pubsub.Presence)(nil)
)

func (c clusterPresence) Watch(ctx context.Context, topic string, fn func(users []string)) (func(), error) {
	w, err := c.p.Watch(ctx, topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}

func (c clusterPresence) Signal(ctx context.Context, topic, user string) error {
	return c.p.Signal(ctx, topic, user)
}

func (c clusterPresence) WatchSignals(topic string, fn func(user string)) (func(), error) {
	w, err := c.p.WatchSignals(topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}

// newReplicaID names this process in the presence bucket's keys: random,
// so a restarted replica never takes over the keys of the one it replaces
// (those are deleted by its stop, or expire).
func newReplicaID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make a replica ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
