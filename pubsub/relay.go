package pubsub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// relayPrefix starts the subject of every relayed request:
// herald-relay.<key>. Core NATS only: nothing relayed is stored.
const relayPrefix = "herald-relay."

// relayServeTimeout bounds serving one relayed request.
const relayServeTimeout = 15 * time.Second

// relaySendTimeout bounds Send when its context has no deadline: long
// enough for the listener to serve (relayServeTimeout), so that an answer
// lost on its way, or a listener that never answers, cannot hold the
// sender for ever.
const relaySendTimeout = relayServeTimeout + 5*time.Second

// relayQueue is how many relayed requests may wait to be served; beyond it
// NATS drops them and their senders time out.
const relayQueue = 1024

// ErrNoListener is wrapped by Relay.Send when no replica listens for the
// key.
var ErrNoListener = errors.New("no replica listens for the key")

// noListenerHeader marks the answer of a replica that stopped listening
// for a key while a request for it was on its way.
const noListenerHeader = "Herald-Relay-No-Listener"

// tooLargeHeader marks the answer of a listener whose own answer was larger
// than NATS carries; its value is that answer's size in bytes.
const tooLargeHeader = "Herald-Relay-Answer-Too-Large"

// ErrAnswerTooLarge is wrapped by Relay.Send when the listener's answer was
// larger than NATS carries (its max_payload, 1 MB by default). It is not
// nats.ErrMaxPayload, which Send wraps when the request is too large.
var ErrAnswerTooLarge = errors.New("the listener's answer is too large to relay")

// RelayHandler serves one relayed request: its headers and body in, the
// answer's out.
type RelayHandler func(ctx context.Context, header http.Header, body []byte) (http.Header, []byte)

// Relay sends requests, over core NATS request and reply, to whichever
// replica listens for a key: the holder of a graphql-sse stream, say,
// whose requests may reach any replica. Every key's subscription feeds one
// channel, served by one dispatching goroutine and a goroutine per
// request, so a replica holding many keys holds no goroutine per key.
//
// Get one with Log.Relay and stop it with Close before closing the Log.
type Relay struct {
	nc  *nats.Conn
	log *slog.Logger
	in  chan *nats.Msg

	mu        sync.Mutex
	handlers  map[string]RelayHandler       // by subject
	subs      map[string]*nats.Subscription // by subject, for Close
	closed    bool
	closeOnce sync.Once

	sendTimeout time.Duration // bounds a Send whose context has no deadline

	ctx    context.Context // ends at Close: requests being served stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // the dispatcher and requests being served
}

// Relay starts a relay on the log's NATS connection.
func (l *Log) Relay() *Relay {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{nc: l.nc, log: l.log, in: make(chan *nats.Msg, relayQueue), handlers: make(map[string]RelayHandler),
		subs: make(map[string]*nats.Subscription), sendTimeout: relaySendTimeout, ctx: ctx, cancel: cancel}
	r.wg.Add(1)
	go r.dispatch()
	return r
}

// Listen hands every request sent to key to serve until stop is called.
// A key has at most one listener per relay: Listen fails while another
// listens for key, until its stop is called.
// When Listen returns, the NATS server knows of the subscription, so a
// request sent through the same server reaches it; other servers of a
// cluster learn of it within moments.
func (r *Relay) Listen(key string, serve RelayHandler) (stop func(), err error) {
	if err := checkRelayKey(key); err != nil {
		return nil, err
	}
	subject := relayPrefix + key
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, fmt.Errorf("relay: listen for %s: the relay is closed", keyRef(key))
	}
	if _, ok := r.handlers[subject]; ok {
		// A second subscription would have every request served twice,
		// and the first stop would take both listeners away.
		r.mu.Unlock()
		return nil, fmt.Errorf("relay: listen for %s: already listening for it; stop that listener first", keyRef(key))
	}
	r.handlers[subject] = serve
	r.mu.Unlock()
	sub, err := r.nc.ChanSubscribe(subject, r.in)
	if err == nil {
		err = r.nc.FlushTimeout(2 * time.Second)
		if err != nil {
			_ = sub.Unsubscribe()
		}
	}
	if err != nil {
		r.forget(subject)
		return nil, fmt.Errorf("relay: listen for %s: %w", keyRef(key), err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("relay: listen for %s: the relay is closed", keyRef(key))
	}
	r.subs[subject] = sub
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			// Forget the handler first, so that requests still on their
			// way are answered "no listener" by dispatch, then drain: a
			// plain unsubscribe would drop those requests unanswered, and
			// their senders would wait out their deadline.
			r.forget(subject)
			_ = sub.Drain()
		})
	}, nil
}

func (r *Relay) forget(subject string) {
	r.mu.Lock()
	delete(r.handlers, subject)
	delete(r.subs, subject)
	r.mu.Unlock()
}

// Send delivers a request to the listener of key and returns its answer.
// The error wraps ErrNoListener when no replica listens. A ctx without a
// deadline is given one long enough for the listener to serve.
func (r *Relay) Send(ctx context.Context, key string, header http.Header, body []byte) (http.Header, []byte, error) {
	if err := checkRelayKey(key); err != nil {
		return nil, nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.sendTimeout)
		defer cancel()
	}
	msg := &nats.Msg{Subject: relayPrefix + key, Header: nats.Header(header.Clone()), Data: body}
	reply, err := r.nc.RequestMsgWithContext(ctx, msg)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, nil, fmt.Errorf("relay: send to %s: %w", keyRef(key), ErrNoListener)
	case err != nil:
		return nil, nil, fmt.Errorf("relay: send to %s: %w", keyRef(key), err)
	case reply.Header.Get(noListenerHeader) != "":
		return nil, nil, fmt.Errorf("relay: send to %s: %w", keyRef(key), ErrNoListener)
	case reply.Header.Get(tooLargeHeader) != "":
		return nil, nil, fmt.Errorf("relay: send to %s: %w (%s bytes; NATS carries at most %d)",
			keyRef(key), ErrAnswerTooLarge, reply.Header.Get(tooLargeHeader), r.nc.MaxPayload())
	}
	return http.Header(reply.Header), reply.Data, nil
}

// Close stops listening for every key, and waits for the requests being
// served. Requests sent afterwards fail with ErrNoListener at once, and so
// do those that were waiting to be served. Every call, concurrent ones
// too, returns once that is done.
func (r *Relay) Close() { r.closeOnce.Do(r.close) }

func (r *Relay) close() {
	r.mu.Lock()
	r.closed = true
	subs := r.subs
	r.subs = make(map[string]*nats.Subscription)
	r.mu.Unlock()
	for _, sub := range subs {
		_ = sub.Unsubscribe()
	}
	if r.nc.IsConnected() {
		// So that the server knows when Close returns, as Listen makes
		// sure it knows of a subscription: a request sent then is no
		// longer routed here, to be dropped unanswered. With no
		// subscription left too: a listener stopped just before (its
		// subscription draining) may still have requests on their way
		// here, and the flush's answer comes after them, so they are in
		// r.in when it returns, to be answered below.
		if err := r.nc.FlushTimeout(2 * time.Second); err != nil {
			r.log.Warn("pubsub: relay closed, but NATS may not know yet", slog.Any("error", err))
		}
	}
	r.cancel()
	r.wg.Wait()
	// Requests delivered before the unsubscriptions that dispatch left.
	for {
		select {
		case m := <-r.in:
			_ = m.RespondMsg(&nats.Msg{Header: nats.Header{noListenerHeader: {"1"}}})
		default:
			return
		}
	}
}

// dispatch serves each request on a goroutine of its own: serving one may
// wait (a subscription resuming from a cursor waits for the replica to
// reach it), and must not hold up the others.
func (r *Relay) dispatch() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case m := <-r.in:
			r.mu.Lock()
			serve := r.handlers[m.Subject]
			served := serve != nil && !r.closed
			if served {
				r.wg.Add(1)
				go r.serve(m, serve)
			}
			r.mu.Unlock()
			if !served {
				// It arrived after its key's listener stopped, or the
				// relay is closing: say so at once rather than leave the
				// sender to time out.
				_ = m.RespondMsg(&nats.Msg{Header: nats.Header{noListenerHeader: {"1"}}})
			}
		}
	}
}

// serve answers one request.
func (r *Relay) serve(m *nats.Msg, serve RelayHandler) {
	defer r.wg.Done()
	ctx, cancel := context.WithTimeout(r.ctx, relayServeTimeout)
	defer cancel()
	header, body := serve(ctx, http.Header(m.Header), m.Data)
	answer := &nats.Msg{Header: nats.Header(header), Data: body}
	err := m.RespondMsg(answer)
	if errors.Is(err, nats.ErrMaxPayload) {
		// Say so, rather than leave the sender to wait out its deadline.
		size := answer.Size() // body and headers
		err = errors.Join(err, m.RespondMsg(&nats.Msg{Header: nats.Header{tooLargeHeader: {strconv.Itoa(size)}}}))
	}
	if err != nil {
		r.log.Warn("pubsub: cannot answer a relayed request",
			slog.String("key", keyRef(strings.TrimPrefix(m.Subject, relayPrefix))), slog.Any("error", err))
	}
}

// keyRef names a key in errors and logs without giving it away: a key may
// be a credential (an event stream's token lets whoever holds it send
// operations on the stream), so only a short hash of it is shown, enough
// to match log lines about one key.
func keyRef(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "key#" + hex.EncodeToString(sum[:4])
}

// checkRelayKey refuses a key that is not one token of a NATS subject of
// at most maxTokenBytes.
func checkRelayKey(key string) error {
	if key == "" || len(key) > maxTokenBytes || strings.ContainsAny(key, ".*> \t\r\n") {
		return fmt.Errorf("relay: key %s is not a single NATS subject token of at most %d bytes", quoteShort(key), maxTokenBytes)
	}
	return nil
}
