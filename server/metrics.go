package server

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus instruments.
type metrics struct {
	sockets    *prometheus.GaugeVec
	streams    *prometheus.GaugeVec
	operations prometheus.Gauge
	executions prometheus.Gauge
	deliveries prometheus.Counter
	slowCloses prometheus.Counter
	closes     *prometheus.CounterVec
	latency    prometheus.Histogram
	relayed    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sockets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_ws_sockets", Help: "Open WebSocket connections by subprotocol.",
		}, []string{"protocol"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_http_streams", Help: "Open HTTP streams (Server-Sent Events, multipart subscriptions) by transport.",
		}, []string{"transport"}),
		operations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_ws_operations", Help: "Operations active on WebSocket connections (subscriptions and queries or mutations in flight).",
		}),
		executions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_shared_executions", Help: "Running subscription executions, each shared by every identical subscription on this replica.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_deliveries_total", Help: "Subscription results written to sockets and event streams.",
		}),
		slowCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_ws_slow_consumer_closes_total", Help: "Sockets closed, and HTTP streams ended, because their outbound queue was full.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_ws_closes_total", Help: "Sockets closed by the server, by close code.",
		}, []string{"code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from an event entering the log to its frame being written to a socket or an HTTP stream.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_sse_relayed_requests_total",
			Help: "graphql-sse single-connection-mode requests relayed to the replica holding their stream, by outcome (ok, no_holder, canceled: the client left first, too_large: refused with 413, error).",
		}, []string{"outcome"}),
	}
	collectors := []struct {
		name string
		c    prometheus.Collector
	}{
		{"herald_ws_sockets", m.sockets}, {"herald_http_streams", m.streams}, {"herald_ws_operations", m.operations},
		{"herald_shared_executions", m.executions}, {"herald_deliveries_total", m.deliveries},
		{"herald_ws_slow_consumer_closes_total", m.slowCloses}, {"herald_ws_closes_total", m.closes},
		{"herald_delivery_latency_seconds", m.latency}, {"herald_sse_relayed_requests_total", m.relayed},
	}
	for i, c := range collectors {
		if err := reg.Register(c.c); err != nil {
			// Leave the registry as it was: the caller may retry with it.
			for _, done := range collectors[:i] {
				reg.Unregister(done.c)
			}
			if _, dup := errors.AsType[prometheus.AlreadyRegisteredError](err); dup {
				return nil, fmt.Errorf("register %s: the registry has it already (another Server's? each Server needs a registry of its own): %w", c.name, err)
			}
			return nil, fmt.Errorf("register %s: %w", c.name, err)
		}
	}
	for _, p := range []protocol{transportWS, legacyWS} {
		m.sockets.WithLabelValues(p.String())
	}
	for _, f := range []streamFormat{sseFormat{}, sseSingleFormat{}, multipartFormat{}} {
		m.streams.WithLabelValues(f.name())
	}
	// Each outcome is exported at 0 from the start: a series that appears
	// only at its first increment is never seen to increase by rate() or
	// increase(), so the first relay error after a start would page nobody.
	for _, o := range []string{relayOK, relayNoHolder, relayCanceled, relayTooLarge, relayError} {
		m.relayed.WithLabelValues(o)
	}
	// So is each code the server closes sockets with: an alert on
	// increase(herald_ws_closes_total{code="1013"}) sees the first slow
	// consumer after a start. 1002 and 1009 are the reader's refusals of
	// frames (readFailed).
	for _, code := range []int{
		closeNormal, closeGoingAway, websocket.CloseProtocolError, closeInvalidPayload,
		websocket.CloseMessageTooBig, closeInternalErrorLegacy, closeTryAgainLater,
		closeBadRequest, closeUnauthorized, closeForbidden, closeInitTimeout,
		closeSubscriberExists, closeTooManyInits, closeInternalError,
	} {
		m.closeCounter(code)
	}
	return m, nil
}

// delivered counts one subscription event written to its client and
// observes its latency from the log, where it is known: not for a replayed
// event, whose age in the log says nothing of how late it was delivered
// (see deliverEvents).
func (m *metrics) delivered(p *payload) {
	m.deliveries.Inc()
	if !p.appended.IsZero() {
		m.latency.Observe(time.Since(p.appended).Seconds())
	}
}

func (m *metrics) closeCounter(code int) prometheus.Counter {
	return m.closes.WithLabelValues(strconv.Itoa(code))
}
