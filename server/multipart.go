package server

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// multipartTransport serves subscriptions in Apollo's multipart HTTP
// subscription protocol, which Apollo Client's HttpLink (and Apollo Kotlin
// and iOS) speaks with no other link: a POST (or GET) on /graphql whose
// Accept lists multipart/mixed with subscriptionSpec=1.0 is answered, for
// a subscription, with a multipart/mixed response of one JSON part per
// result, {"payload": <result>}, until the subscription ends.
//
// A subscription joins the same shared execution as WebSocket and SSE
// subscribers of the same operation; its stream is an httpStream framed
// by multipartFormat. Apollo Client sends that Accept only with
// subscriptions, so queries and mutations are answered as on any POST,
// and so are errors found before the subscription starts (its request,
// its credentials, its validation): as one JSON response with a status,
// which Apollo Client reads as it reads any failed request.
type multipartTransport struct {
	*httpStreams
	maxBodyBytes int64
}

var _ graphql.Transport = (*multipartTransport)(nil)

// multipartKeepAlive bounds the heartbeat interval of multipart streams:
// Apollo's protocol has the server send a heartbeat part every few seconds
// (Apollo's router every 5, Hive Router every 10), and 10 s also keeps
// well inside the idle timeouts of common proxies (60 s for nginx's
// proxy_read_timeout and AWS load balancers). A shorter PingInterval
// shortens it.
const multipartKeepAlive = 10 * time.Second

// Supports claims GET and POST requests that accept Apollo's multipart
// subscriptions.
func (t *multipartTransport) Supports(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodPost) && !isWebSocketUpgrade(r) && acceptsMultipart(r)
}

// acceptsMultipart reports whether r's Accept header lists multipart/mixed
// with subscriptionSpec 1.0 (Apollo Client 4 sends
// multipart/mixed;boundary=graphql;subscriptionSpec=1.0, older clients
// subscriptionSpec="1.0"; mime.ParseMediaType reads both), with a q-value
// at least that of text/event-stream, should both be listed.
func acceptsMultipart(r *http.Request) bool {
	multipart, sse := -1.0, -1.0
	eachAcceptedRange(r, func(mt string, params map[string]string, q float64) {
		switch {
		case mt == "multipart/mixed" && params["subscriptionspec"] == "1.0":
			multipart = max(multipart, q)
		case mt == mediaEventStream:
			sse = max(sse, q)
		}
	})
	return multipart > 0 && multipart >= sse
}

// Do reads and checks the request and prepares the operation, answering
// what is wrong as JSON with a status, as postTransport and getTransport
// do. A subscription is then streamed; any other operation is executed
// and answered as they answer it.
func (t *multipartTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx, params, opCtx, ok := t.subscriptionOnly(w, r, exec, t.maxBodyBytes)
	if !ok || !t.admit(w, r) {
		return
	}
	st := t.open(ctx, w, r, multipartFormat{}, true)
	defer st.close()
	st.subscribe(ctx, exec, params, opCtx)
}

// multipartFormat frames a stream in Apollo's multipart subscription
// protocol, with the boundary "graphql":
//
//	\r\n--graphql\r\n                                  the preamble
//	Content-Type: application/json; charset=utf-8\r\n
//	\r\n
//	{"payload":{"data":…,"extensions":{"cursor":…}}}   a result
//	\r\n--graphql\r\n
//	Content-Type: application/json; charset=utf-8\r\n
//	\r\n
//	{}                                                 a heartbeat
//	\r\n--graphql\r\n
//	…
//	Content-Type: application/json; charset=utf-8\r\n
//	\r\n
//	{}                                                 the end: a last heartbeat
//	\r\n--graphql--\r\n                                and the close delimiter
//
// Every write ends with a whole delimiter line, so each part is complete
// the moment it is written: Apollo Client's parser (readMultipartBody)
// hands a part on once it sees the "\r\n--graphql" after it, and a
// line-based parser (RFC 2046, Go's mime/multipart) once that line ends.
// Writing the delimiter with each part rather than before the next one is
// also why the end is a heartbeat and the close delimiter: an open part
// must hold something, and Apollo Client skips an empty object.
//
// JSON never holds a raw CR or LF, so a part can never contain the
// delimiter.
type multipartFormat struct{}

var _ streamFormat = multipartFormat{}

const (
	multipartBoundary  = "graphql"
	multipartDelimiter = "\r\n--" + multipartBoundary + "\r\n"
	multipartClose     = "\r\n--" + multipartBoundary + "--\r\n"
	multipartPartHead  = "Content-Type: application/json; charset=utf-8\r\n\r\n"
	multipartHeartbeat = "{}"
)

func (multipartFormat) name() string { return "multipart" }

// contentType says subscriptionSpec=1.0 unquoted, as Apollo's router does:
// Apollo iOS takes the spec directive verbatim and knows only
// "subscriptionSpec=1.0" (a quoted value fails every subscription with
// invalidMultipartProtocol); the boundary may be quoted (it strips quotes).
func (multipartFormat) contentType() string {
	return `multipart/mixed;boundary="` + multipartBoundary + `";subscriptionSpec=1.0`
}

func (multipartFormat) preamble() []byte { return []byte(multipartDelimiter) }

func (multipartFormat) keepalive() []byte {
	return []byte(multipartPartHead + multipartHeartbeat + multipartDelimiter)
}

// appendNextHead and appendNextTail frame a part whose payload is the
// shared encoding.
func (multipartFormat) appendNextHead(buf []byte, _ *operation, _ *payload) []byte {
	buf = append(buf, multipartPartHead...)
	return append(buf, `{"payload":`...)
}

func (multipartFormat) appendNextTail(buf []byte, _ *operation, _ *payload) []byte {
	buf = append(buf, '}')
	return append(buf, multipartDelimiter...)
}

// appendEnd appends the last part and the close delimiter. A transport
// error (SLOW_CONSUMER, UNAUTHENTICATED, SHUTTING_DOWN: the client
// subscribes again) is a part with a null payload and the error beside it,
// which Apollo Client reports as a CombinedProtocolErrors; a FORBIDDEN end
// (access withdrawn, or the user disconnected) is the subscription's own
// result, a payload of errors, which it reports as CombinedGraphQLErrors
// and a RetryLink does not repeat, as over SSE and WebSocket. A completion
// is a heartbeat.
func (multipartFormat) appendEnd(buf []byte, _ *operation, err *gqlerror.Error) []byte {
	buf = append(buf, multipartPartHead...)
	switch {
	case err == nil:
		buf = append(buf, multipartHeartbeat...)
	case err.Extensions["code"] == codeForbidden:
		body, _ := json.Marshal(gqlerror.List{err})
		buf = append(buf, `{"payload":{"errors":`...)
		buf = append(buf, body...)
		buf = append(buf, `}}`...)
	default:
		body, _ := json.Marshal(transportError{Errors: gqlerror.List{err}})
		buf = append(buf, body...)
	}
	return append(buf, multipartClose...)
}

// appendGoAway ends the stream with a SHUTTING_DOWN error: Apollo Client
// does not reconnect an HTTP subscription by itself, and a body cut short
// would reach the application as a bare network error.
func (f multipartFormat) appendGoAway(buf []byte) []byte {
	return f.appendEnd(buf, nil, &gqlerror.Error{
		Message:    "the server is shutting down; subscribe again (another replica will serve it) and resume from the last event's cursor",
		Extensions: map[string]any{"code": codeShuttingDown},
	})
}

// codeShuttingDown is the error code of a multipart stream ended by a
// draining replica.
const codeShuttingDown = "SHUTTING_DOWN"

// transportError is the part of Apollo's protocol that reports an error of
// the transport rather than of the subscription: {"payload":null,"errors":[…]}.
type transportError struct {
	Payload *struct{}     `json:"payload"`
	Errors  gqlerror.List `json:"errors"`
}
