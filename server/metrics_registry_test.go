package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/auth"
)

// TestSharedRegistryErrorSaysWhatFailed: an embedder serving two domains
// in one process hands both Servers its one registry. The second New fails
// (each Server registers the same instruments); its error must say that
// Options.Metrics is the problem and which instrument collided, not only
// prometheus's "duplicate metrics collector registration attempted".
func TestSharedRegistryErrorSaysWhatFailed(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := Options{
		Schema:        newFakeSchema(t),
		Authenticator: auth.Dev{},
		Readiness:     func(context.Context) []Check { return nil },
		Metrics:       reg,
	}
	first, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = first.Shutdown(ctx)
	})
	second, err := New(opts)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = second.Shutdown(ctx)
		t.Fatal("a second Server registered its instruments in the first's registry")
	}
	for _, want := range []string{"Options.Metrics", "herald_ws_sockets"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New with a registry another Server uses: %q, want it to name %s", err, want)
		}
	}
}
