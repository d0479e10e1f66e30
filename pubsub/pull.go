package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsAPIPrefix starts the subject of every JetStream API request this
// package sends itself. connect creates its jetstream.JetStream with
// jetstream.New, which uses this prefix (no domain, no custom prefix); the
// two must change together.
const jsAPIPrefix = jetstream.DefaultAPIPrefix

// consumerNextPrefix is the subject of a pull request, before
// <stream>.<consumer>.
const consumerNextPrefix = jsAPIPrefix + "CONSUMER.MSG.NEXT."

// readIdle bounds the wait for the next reply to a pull request, whatever
// ctx says: it is what jetstream's FetchNoWait waited (its 0 expiry plus
// 1s). A no-wait request is answered at once, so a silence this long
// means the request or the rest of its replies got lost; the batch ends
// there, as it did with FetchNoWait.
const readIdle = time.Second

// errIdle is puller.next's: no reply came for readIdle.
var errIdle = errors.New("no reply to the pull request")

// puller sends the no-wait pull requests of one read and receives their
// replies on one subscription, which it keeps for the whole read. The
// replies of request i go to <inbox>.<i>, so that a status the server
// sends late to a request given up on cannot end a later batch; late
// entries are welcome, the delivery-sequence check sees to their order.
type puller struct {
	nc      *nats.Conn
	created time.Time // when the read made it, right after its consumer
	subject string    // the consumer's pull request subject
	inbox   string
	sub     *nats.Subscription
	// msgs holds the replies not yet read. A reply that finds it full is
	// dropped (nats.go reports a slow consumer): the gap check or the idle
	// wait notices.
	msgs  chan *nats.Msg
	batch uint64      // the most entries one request may ask for
	idle  *time.Timer // created at the first wait
	sent  int         // requests sent
	reply string      // reply subject of the latest request
	body  []byte      // the latest request's body, reused
}

// newPuller subscribes to the replies of pull requests to consumer of
// stream that ask for at most batch entries each.
func newPuller(nc *nats.Conn, stream, consumer string, batch uint64) (*puller, error) {
	inbox := nc.NewInbox()
	// Twice a batch, as jetstream's Fetch allows: the replies to a request
	// given up on may still be coming with those to the next.
	msgs := make(chan *nats.Msg, 2*batch+2)
	sub, err := nc.ChanSubscribe(inbox+".*", msgs)
	if err != nil {
		return nil, fmt.Errorf("subscribe to the replies: %w", err)
	}
	return &puller{
		nc:      nc,
		created: time.Now(),
		subject: consumerNextPrefix + stream + "." + consumer,
		inbox:   inbox,
		sub:     sub,
		msgs:    msgs,
		batch:   max(batch, 1),
	}, nil
}

// request asks for up to batch entries, which the server sends at once,
// followed by a 404 or 408 status if there are fewer.
func (p *puller) request(batch uint64) error {
	p.body = append(p.begin(batch), `,"no_wait":true}`...)
	return p.send()
}

// requestWaiting asks for up to batch entries, which the server sends as
// they come, for up to expires; it then ends the request with a 408 status
// saying how many it did not send. While it has nothing to send, it sends
// a heartbeat (a 100 status) every heartbeat.
func (p *puller) requestWaiting(batch uint64, expires, heartbeat time.Duration) error {
	b := append(p.begin(batch), `,"expires":`...)
	b = strconv.AppendInt(b, expires.Nanoseconds(), 10)
	b = append(b, `,"idle_heartbeat":`...)
	b = strconv.AppendInt(b, heartbeat.Nanoseconds(), 10)
	p.body = append(b, '}')
	return p.send()
}

// begin starts the body of a request for batch entries, reusing p.body.
func (p *puller) begin(batch uint64) []byte {
	return strconv.AppendUint(append(p.body[:0], `{"batch":`...), batch, 10)
}

// send publishes p.body as the next request.
func (p *puller) send() error {
	p.sent++
	p.reply = p.inbox + "." + strconv.Itoa(p.sent)
	return p.nc.PublishRequest(p.subject, p.reply, p.body)
}

// next is the next reply. It waits until ctx ends (ctx.Err()) or for
// readIdle (errIdle).
func (p *puller) next(ctx context.Context) (*nats.Msg, error) {
	select {
	case msg := <-p.msgs:
		return msg, nil
	default:
	}
	if p.idle == nil {
		p.idle = time.NewTimer(readIdle)
	} else {
		p.idle.Reset(readIdle)
	}
	select {
	case msg := <-p.msgs:
		return msg, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.idle.C:
		return nil, errIdle
	}
}

// unknownYet reports whether a "no responders" answer to a request may
// still mean only that the NATS node this process is connected to has not
// learnt of the consumer yet (see interestWait): nothing has come from it
// (delivered is false) and it was created less than interestWait ago.
// Such a request is sent again after interestRetry.
func (p *puller) unknownYet(delivered bool) bool {
	return !delivered && time.Since(p.created) < interestWait
}

// close unsubscribes.
func (p *puller) close() {
	if p.idle != nil {
		p.idle.Stop()
	}
	// It fails only when the connection is closed, which ended the
	// subscription already.
	_ = p.sub.Unsubscribe()
}

// statusOf returns the status code of a reply that is a status rather
// than an entry, as jetstream's Fetch tells them apart: no data, and a
// Status header.
func statusOf(msg *nats.Msg) (code string, ok bool) {
	if len(msg.Data) > 0 || len(msg.Header) == 0 {
		return "", false
	}
	code = msg.Header.Get(statusHeader)
	return code, code != ""
}

// The headers nats.go makes of a status line ("NATS/1.0 404 No Messages").
const (
	statusHeader = "Status"
	descrHeader  = "Description"
)

// Status codes of the replies to a pull request, and the descriptions of
// the 409 ones, which nats.go compares in lower case.
const (
	statusControl      = "100"
	statusBadRequest   = "400"
	statusNoMessages   = "404"
	statusTimeout      = "408"
	statusConflict     = "409"
	statusPinMismatch  = "423"
	statusNoResponders = "503"

	descrMaxBytes         = "message size exceeds maxbytes"
	descrBatchCompleted   = "batch completed"
	descrConsumerDeleted  = "consumer deleted"
	descrLeadershipChange = "leadership change"
	descrServerShutdown   = "server shutdown"
)

// pullStatus says what a status reply to a no-wait pull request means,
// as jetstream's Fetch reads it, returning the same errors: the batch
// ends (404 no messages, 408 request timeout: there are no more now), it
// goes on (100, a heartbeat), or the read fails with err.
func pullStatus(code, descr string) (end bool, err error) {
	switch code {
	case statusNoMessages, statusTimeout:
		return true, nil
	case statusControl:
		return false, nil
	case statusBadRequest:
		return true, jetstream.ErrBadRequest
	case statusNoResponders:
		// No consumer took the request: it is gone, or its stream is.
		return true, nats.ErrNoResponders
	case statusPinMismatch:
		return true, jetstream.ErrPinIDMismatch
	case statusConflict:
		switch d := strings.ToLower(descr); {
		case strings.Contains(d, descrMaxBytes):
			// Never asked for (no max_bytes); Fetch ends the batch.
			return true, nil
		case strings.Contains(d, descrBatchCompleted):
			return true, jetstream.ErrBatchCompleted
		case strings.Contains(d, descrConsumerDeleted):
			return true, jetstream.ErrConsumerDeleted
		case strings.Contains(d, descrLeadershipChange):
			return true, jetstream.ErrConsumerLeadershipChanged
		case strings.Contains(d, descrServerShutdown):
			return true, jetstream.ErrServerShutdown
		}
	}
	return true, fmt.Errorf("nats: status %s %s", code, descr)
}

// ackPrefix starts the reply subject of every entry a consumer delivers.
const ackPrefix = "$JS.ACK."

// ackReply is what the reply subject of a delivered entry says about it.
type ackReply struct {
	streamSeq   uint64
	consumerSeq uint64 // the delivery's number: 1, 2, ... for a consumer that acknowledges nothing
	stored      int64  // when the stream stored it, in ns since the Unix epoch
	pending     uint64 // entries of the consumer after this one
}

// Positions of the tokens of an ack reply subject after $JS.ACK., in the
// form without domain and account hash.
const (
	ackStream = iota
	ackConsumer
	ackDelivered
	ackStreamSeq
	ackConsumerSeq
	ackStored
	ackPending
	ackTokens
)

// parseAckReply reads the reply subject of an entry a consumer delivered:
//
//	$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
//	$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>.<random>
//
// Like nats.go, it takes the second form with or without the last token,
// and ignores tokens after it. It allocates nothing unless it fails, and
// fails unless every token is there and every number is a decimal
// number.
func parseAckReply(reply string) (ackReply, error) {
	rest, ok := strings.CutPrefix(reply, ackPrefix)
	if !ok {
		return ackReply{}, fmt.Errorf("reply subject %q does not start with %s", reply, ackPrefix)
	}
	skip := 0
	switch n := strings.Count(rest, ".") + 1; {
	case n == ackTokens:
	case n >= ackTokens+2:
		skip = 2 // domain, account hash
	default:
		return ackReply{}, fmt.Errorf("reply subject %q has %d tokens, want %d or at least %d",
			reply, n+2, ackTokens+2, ackTokens+4)
	}
	var a ackReply
	for i := -skip; i < ackTokens; i++ {
		var tok string
		tok, rest, _ = strings.Cut(rest, ".")
		if tok == "" {
			return ackReply{}, fmt.Errorf("reply subject %q has an empty token", reply)
		}
		var err error
		switch i {
		case ackDelivered:
			_, err = strconv.ParseUint(tok, 10, 64)
		case ackStreamSeq:
			a.streamSeq, err = strconv.ParseUint(tok, 10, 64)
		case ackConsumerSeq:
			a.consumerSeq, err = strconv.ParseUint(tok, 10, 64)
		case ackStored:
			a.stored, err = strconv.ParseInt(tok, 10, 64)
		case ackPending:
			a.pending, err = strconv.ParseUint(tok, 10, 64)
		}
		if err != nil {
			return ackReply{}, fmt.Errorf("reply subject %q: token %d: %w", reply, i+skip+3, err)
		}
	}
	return a, nil
}
