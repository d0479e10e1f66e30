// Package pubsub is Herald's only contact with NATS.
//
// It connects to an external NATS server or runs an embedded one in-process,
// and keeps one JetStream stream that acts as the durable event log shared by
// every Herald replica. Callers append events to subjects they choose and
// follow the log from any sequence; the package knows nothing about what the
// events mean.
//
// A [Log] is safe for concurrent use by multiple goroutines.
package pubsub
