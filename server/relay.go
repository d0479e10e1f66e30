package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Relay carries the requests of graphql-sse's single connection mode to
// the replica that holds the stream they are for. A client reserves a
// stream with PUT, opens it with GET and sends operations with POST, and
// behind a load balancer without sticky sessions each may reach another
// replica: the replica that receives one finds the stream's holder by the
// stream's token through the relay.
//
// The default, NewLocalRelay, connects the servers of one process; Herald
// passes one over NATS (package pubsub), shared by every replica.
type Relay interface {
	// Listen hands every message sent to token to serve, until stop is
	// called. Once Listen returns, messages sent from any replica reach
	// serve; at most one listener per token is expected.
	Listen(token string, serve RelayHandler) (stop func(), err error)
	// Send delivers msg to the listener of token and returns its answer,
	// or an error wrapping ErrNoStreamHolder when no one listens.
	Send(ctx context.Context, token string, msg RelayMessage) (RelayMessage, error)
}

// errRelayPanicked is the error of a Relay call that panicked.
var errRelayPanicked = errors.New("the relay panicked")

// panicSafeRelay is a Relay (Options.Relay, the embedder's) whose panics
// are recovered and logged, and taken as failures: a panic would
// otherwise unwind past what a stream being opened or reserved holds (its
// place under MaxConnections, its reservation), which nothing would give
// back, as requestCredentials keeps an Authenticator's panics.
type panicSafeRelay struct {
	relay Relay
	log   *slog.Logger
}

func (p panicSafeRelay) Listen(token string, serve RelayHandler) (stop func(), err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(p.log, context.Background(), "listening on the relay", recovered)
			stop, err = nil, errRelayPanicked
		}
	}()
	inner, err := p.relay.Listen(token, serve)
	if err != nil || inner == nil {
		return inner, err
	}
	return func() {
		defer func() {
			if recovered := recover(); recovered != nil {
				logRecovered(p.log, context.Background(), "stopping listening on the relay", recovered)
			}
		}()
		inner()
	}, nil
}

func (p panicSafeRelay) Send(ctx context.Context, token string, msg RelayMessage) (reply RelayMessage, err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(p.log, ctx, "sending on the relay", recovered)
			reply, err = RelayMessage{}, errRelayPanicked
		}
	}()
	return p.relay.Send(ctx, token, msg)
}

// RelayHandler answers one relayed message.
type RelayHandler func(ctx context.Context, msg RelayMessage) RelayMessage

// RelayMessage is a relayed request or its answer: an HTTP request or
// response as headers and a body. A Relay carries the header's keys as
// they are, not put in canonical form: a request's client address travels
// under a key no client can send (relayClientAddrKey).
type RelayMessage struct {
	Header http.Header
	Body   []byte
}

// ErrNoStreamHolder is what Relay.Send wraps when no replica listens for
// the token.
var ErrNoStreamHolder = errors.New("no replica holds the stream")

// ErrRelayMessageTooLarge is what Relay.Send wraps when the message is
// larger than the relay carries (NATS's max_payload, 1 MB by default).
var ErrRelayMessageTooLarge = errors.New("the message is too large to relay")

// ErrRelayAnswerTooLarge is what Relay.Send wraps when the listener's
// answer was larger than the relay carries back.
var ErrRelayAnswerTooLarge = errors.New("the answer is too large to relay back")

// NewLocalRelay returns a Relay that connects the servers of this process
// that are given it: a single replica, or several in a test.
func NewLocalRelay() Relay {
	return &localRelay{listeners: make(map[string]*localListener)}
}

type localRelay struct {
	mu        sync.Mutex
	listeners map[string]*localListener
}

type localListener struct{ serve RelayHandler }

func (l *localRelay) Listen(token string, serve RelayHandler) (func(), error) {
	ll := &localListener{serve: serve}
	l.mu.Lock()
	l.listeners[token] = ll
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		if l.listeners[token] == ll {
			delete(l.listeners, token)
		}
		l.mu.Unlock()
	}, nil
}

func (l *localRelay) Send(ctx context.Context, token string, msg RelayMessage) (RelayMessage, error) {
	l.mu.Lock()
	ll := l.listeners[token]
	l.mu.Unlock()
	if ll == nil {
		return RelayMessage{}, fmt.Errorf("relay to the stream's replica: %w", ErrNoStreamHolder)
	}
	return ll.serve(ctx, msg), nil
}

// Headers that carry a relayed request's method and target, and its
// answer's status. A client's own headers of these names are overwritten
// or dropped.
const (
	relayMethodHeader = "Herald-Relay-Method"
	relayTargetHeader = "Herald-Relay-Target"
	relayStatusHeader = "Herald-Relay-Status"
	relayUserHeader   = "Herald-Relay-User"
)

// relayClientAddrKey carries a relayed request's client address
// (http.Request.RemoteAddr) from the replica it reached to the holder,
// whose limits count an anonymous client's mutations by it (mutationKey):
// without it every client whose requests are relayed would share one
// allowance there. The forwarding replica sets it; no client can: the key
// is not in canonical form, and net/http gives every header a client sends
// (over HTTP/1 or HTTP/2) its canonical form, so a client's
// "Herald-Relay-Client-Addr", even one a replica of an earlier version
// relays as it came, is never read as it. The relay carries keys as they
// are (NATS headers keep their case); a relay that did not would lose the
// address, never take a client's. A message without it (from a replica of
// an earlier version) is served without an address, as it was before.
const relayClientAddrKey = "herald-relay-client-addr"

// relayedKey marks the context of a request replayed from the relay: it
// is served here or refused, never relayed again.
type relayedKey struct{}

func isRelayed(ctx context.Context) bool { return ctx.Value(relayedKey{}) != nil }

// relayRequest turns r, whose body is at most limit bytes, into a message.
func relayRequest(r *http.Request, limit int64) (RelayMessage, *requestError) {
	var body []byte
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			// As any other body: a stall is 408, and the error's text,
			// which names both ends' addresses, is not passed on.
			return RelayMessage{}, bodyReadError(err)
		}
		if int64(len(body)) > limit {
			return RelayMessage{}, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body is larger than the limit of %d bytes", limit)}
		}
	}
	h := r.Header.Clone()
	h.Set(relayMethodHeader, r.Method)
	h.Set(relayTargetHeader, r.URL.RequestURI())
	h.Del(relayUserHeader) // only a claim carries one, set by claimRemote
	h.Del(relayStatusHeader)
	delete(h, relayClientAddrKey) // a request net/http read has none; one made in process might
	if r.RemoteAddr != "" {
		h[relayClientAddrKey] = []string{r.RemoteAddr}
	}
	return RelayMessage{Header: h, Body: body}, nil
}

// replayedRequest rebuilds the request a message carries, its context
// marked as relayed, with the address of the client that sent it to the
// forwarding replica, if that replica said (relayClientAddrKey).
func replayedRequest(ctx context.Context, msg RelayMessage) (*http.Request, error) {
	h := msg.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	method, target := h.Get(relayMethodHeader), h.Get(relayTargetHeader)
	h.Del(relayMethodHeader)
	h.Del(relayTargetHeader)
	var remote string
	//lint:ignore SA1008 the key is not canonical on purpose: no client's header has it
	if addr := h[relayClientAddrKey]; len(addr) > 0 {
		remote = addr[0]
	}
	delete(h, relayClientAddrKey)
	r, err := http.NewRequestWithContext(context.WithValue(ctx, relayedKey{}, true), method, target, bytes.NewReader(msg.Body))
	if err != nil {
		return nil, fmt.Errorf("rebuild a relayed %q request for %q: %w", method, target, err)
	}
	r.Header = h
	r.RequestURI = target
	r.RemoteAddr = remote // NewRequest's is "", as it stays when none is said
	return r, nil
}

// relayRecorder collects the answer to a replayed request.
type relayRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRelayRecorder() *relayRecorder { return &relayRecorder{header: http.Header{}} }

func (w *relayRecorder) Header() http.Header { return w.header }

func (w *relayRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *relayRecorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// answered reports whether anything of an answer was written.
func (w *relayRecorder) answered() bool { return w.status != 0 }

// message is the recorded answer as a relay message. One with nothing
// written is 502, never 200: the forwarding replica writes the status it
// is given to a client still waiting for it, and a 200 with no body reads
// as an operation accepted. serveRelayed answers every request it serves,
// so that is only what a path of the handler's that answers nothing
// would get without it.
func (w *relayRecorder) message() RelayMessage {
	status := w.status
	if status == 0 {
		status = http.StatusBadGateway
	}
	h := w.header.Clone()
	h.Set(relayStatusHeader, strconv.Itoa(status))
	return RelayMessage{Header: h, Body: w.body.Bytes()}
}

// writeRelayed writes a relayed answer to w, under the responder's write
// deadlines (answerDeadline).
func (rs responder) writeRelayed(w http.ResponseWriter, msg RelayMessage) {
	status, err := strconv.Atoi(msg.Header.Get(relayStatusHeader))
	if err != nil || status < 100 || status > 999 {
		status = http.StatusBadGateway
	}
	for k, vs := range msg.Header {
		if k == relayStatusHeader {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(status)
	_, _ = rs.deadline.write(w, msg.Body)
}

// relayPatience is how long a request keeps looking for the holder of a
// stream that no replica answers for. A stream just opened on another
// replica may not be known to every NATS server of a cluster yet.
const relayPatience = time.Second

// relayServeTimeout bounds serving one relayed request on the holder: an
// operation whose start takes longer (a subscription's resolver loading a
// room) is taken back and answered 503, so that the sender, which waits
// longer (relayTimeout), gets an answer that says what happened.
const relayServeTimeout = 15 * time.Second

// relayTimeout bounds one relayed request as its sender waits for it. It
// exceeds what the holder may take (relayServeTimeout): a sender that gave
// up first would answer "try again" for an operation that then started,
// and the retry would meet it (409).
const relayTimeout = relayServeTimeout + 5*time.Second

// sendPatiently sends msg to the holder of token, trying again while no one
// answers, for up to relayPatience, and waits at most within in all.
func sendPatiently(ctx context.Context, relay Relay, token string, msg RelayMessage, within time.Duration) (RelayMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	deadline := time.Now().Add(relayPatience)
	wait := 20 * time.Millisecond
	for {
		reply, err := relay.Send(ctx, token, msg)
		if !errors.Is(err, ErrNoStreamHolder) || time.Now().Add(wait).After(deadline) {
			return reply, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return RelayMessage{}, fmt.Errorf("relay to the stream's replica: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
