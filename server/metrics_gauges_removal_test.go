package server

import (
	"context"
	"testing"
	"time"
)

// TestMetricsGaugesAfterMemberRemoval: subscriptions a member removal ends
// leave herald_ws_operations and herald_http_streams; the sockets stay.
func TestMetricsGaugesAfterMemberRemoval(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("mu war room", "bob")
	vars := map[string]any{"r": room}
	var subs []privSub
	for _, tr := range privTransports {
		subs = append(subs, tr.open(r, "bob", vars))
	}
	waitFor(t, "subscriptions", func() bool { return r.members() == len(subs) })
	metricsTestWait(t, r, "herald_ws_operations", 2)
	metricsTestWait(t, r, "herald_shared_executions", 1)
	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatalf("remove bob: %v", err)
	}
	for i, s := range subs {
		if ev := s.next(5 * time.Second); ev.kind != "error" {
			t.Errorf("%s: %+v, want an error", privTransports[i].name, ev)
		}
	}
	waitFor(t, "subscriptions to leave", func() bool { return r.members() == 0 })
	metricsTestWait(t, r, "herald_ws_operations", 0)
	metricsTestWait(t, r, "herald_shared_executions", 0)
	metricsTestWait(t, r, `herald_http_streams{transport="sse"}`, 0)
	metricsTestWait(t, r, `herald_http_streams{transport="multipart"}`, 0)
	metricsTestWait(t, r, `herald_ws_sockets{protocol="graphql-transport-ws"}`, 1)
	metricsTestWait(t, r, `herald_ws_sockets{protocol="graphql-ws"}`, 1)
}
