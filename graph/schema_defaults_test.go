package graph

import (
	"testing"
	"time"
)

// TestSchemaDefaults: NewSchemaWith takes the documented defaults
// (schema.graphqls and README "Presence") for the options left zero or
// negative: batches at most every 250 ms, more than 20 changes a
// SNAPSHOT, typing shown 5 s after a call, calls closer than 1 s apart
// passed on once (the throttle's interval included); options set are
// kept.
func TestSchemaDefaults(t *testing.T) {
	type got struct {
		window, typingFor, typingEvery, throttle time.Duration
		burst, keep                              int
	}
	defaults := got{250 * time.Millisecond, 5 * time.Second, time.Second, time.Second, 20, typingKeep}
	for _, tt := range []struct {
		name string
		opts Options
		want got
	}{
		{"zero", Options{}, defaults},
		{"negative", Options{PresenceWindow: -1, PresenceBurst: -1, TypingFor: -1, TypingEvery: -1}, defaults},
		{"set", Options{PresenceWindow: time.Millisecond, PresenceBurst: 3, TypingFor: 2 * time.Second, TypingEvery: 3 * time.Second},
			got{time.Millisecond, 2 * time.Second, 3 * time.Second, 3 * time.Second, 3, typingKeep}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			es, ok := NewSchemaWith(nil, time.Unix(0, 1), tt.opts).(*executableSchema)
			if !ok {
				t.Fatal("NewSchemaWith does not return the generated executableSchema")
			}
			r := es.Resolvers.(*Resolver)
			g := got{r.opts.PresenceWindow, r.opts.TypingFor, r.opts.TypingEvery, r.typing.every, r.opts.PresenceBurst, r.typing.keep}
			if g != tt.want {
				t.Errorf("options %+v became window %v, typingFor %v, typingEvery %v, throttle interval %v, burst %d, throttle keep %d; want %+v",
					tt.opts, g.window, g.typingFor, g.typingEvery, g.throttle, g.burst, g.keep, tt.want)
			}
		})
	}
}
