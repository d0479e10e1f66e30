package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// persistedQueryNotFound is the error code of gqlgen's APQ extension for a
// hash it does not know. Apollo clients expect it with status 200, so it is
// sent with 200 whatever the media type.
const persistedQueryNotFound = "PERSISTED_QUERY_NOT_FOUND"

// wireResponse is a GraphQL response as sent. Unlike graphql.Response it
// omits data when there is none, as the spec requires for request errors,
// while keeping an explicit "data": null from execution.
type wireResponse struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

// responder writes GraphQL and JSON responses, each under write deadlines
// (answerDeadline), and logs what clients cannot be told.
type responder struct {
	log      *slog.Logger
	deadline answerDeadline
	// authFailures samples the lines logged when credentials could not be
	// checked, on every transport (logAuthFailure).
	authFailures *logSampler
}

// result writes a response produced by the executor. A response without
// data is a request error: 400 as application/graphql-response+json, 200 as
// application/json.
func (rs responder) result(w http.ResponseWriter, r *http.Request, m mediaType, resp *graphql.Response) {
	status := http.StatusOK
	if m == mediaGraphQLResponse && len(resp.Data) == 0 && !hasCode(resp.Errors, persistedQueryNotFound) {
		status = http.StatusBadRequest
	}
	if len(resp.Errors) == 0 && len(resp.Extensions) == 0 && len(resp.Data) > 0 {
		// The common case, without a second pass over the executor's
		// output (encoding/json re-validates a RawMessage).
		b := make([]byte, 0, len(`{"data":}`)+len(resp.Data))
		b = append(b, `{"data":`...)
		b = append(b, resp.Data...)
		rs.writeBody(w, status, m.contentType(), append(b, '}'))
		return
	}
	rs.graphQL(w, r, m, status, wireResponse{Errors: resp.Errors, Data: resp.Data, Extensions: resp.Extensions})
}

// reject writes a request error with the given status and message, and
// the extensions.code of that status (see statusCode). The message is for
// the client and must not echo unbounded client input.
func (rs responder) reject(w http.ResponseWriter, r *http.Request, m mediaType, status int, msg string) {
	err := &gqlerror.Error{Message: msg}
	if code := statusCode(status); code != "" {
		errcode.Set(err, code)
	}
	rs.log.DebugContext(r.Context(), "server: rejected request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", status), slog.String("reason", msg))
	rs.sendErrors(w, r, m, status, err)
}

// statusCode is the extensions.code of a request refused with an HTTP
// status: what a client switches on without reading the message, in the
// codes the rest of the API uses (Apollo Server's, and the domain's
// NOT_FOUND, CONFLICT and UNAVAILABLE). A request the server cannot take
// as sent (malformed, too large, a method or media type it does not
// serve) is BAD_REQUEST, as Apollo Server answers such requests; "" for a
// status no code fits.
func statusCode(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusNotAcceptable,
		http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong,
		http.StatusUnsupportedMediaType, http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestTimeout:
		return codeBadRequest
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "FORBIDDEN"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "CONFLICT"
	case http.StatusTooManyRequests:
		return "RATE_LIMITED"
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	}
	return ""
}

// notAcceptable answers a request whose Accept header allows no media type
// this server produces.
func (rs responder) notAcceptable(w http.ResponseWriter, r *http.Request) {
	rs.reject(w, r, mediaJSON, http.StatusNotAcceptable, fmt.Sprintf(
		"Accept header allows neither %s nor %s", mediaGraphQLResponse, mediaJSON))
}

// sendErrors writes a GraphQL response holding only errs.
func (rs responder) sendErrors(w http.ResponseWriter, r *http.Request, m mediaType, status int, errs ...*gqlerror.Error) {
	rs.graphQL(w, r, m, status, wireResponse{Errors: errs})
}

// graphQL writes body as a GraphQL response of media type m.
func (rs responder) graphQL(w http.ResponseWriter, r *http.Request, m mediaType, status int, body wireResponse) {
	rs.json(w, r, m.contentType(), status, body)
}

// json writes v as JSON. If v cannot be encoded (a resolver put something
// unencodable into extensions, say) the client gets a 500 GraphQL error and
// the cause is logged.
func (rs responder) json(w http.ResponseWriter, r *http.Request, contentType string, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		rs.log.ErrorContext(r.Context(), "server: cannot encode response",
			slog.String("path", r.URL.Path), slog.Any("error", err))
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"message":"internal server error: response could not be encoded"}]}`)
	}
	rs.writeBody(w, status, contentType, b) // a 503 gets Retry-After
}

// retryAfterUnavailable is the Retry-After (RFC 9110 section 10.2.3), in
// seconds, of every 503 the server writes (see responder.writeBody): on
// /graphql a draining or full replica, a stream reservation that cannot be
// made, credentials that cannot be checked just then. Each is over, or
// another replica behind the same address answers, within moments, and the
// header tells a client to try again rather than give up, and not at once. On
// /readyz (a replica not ready) it is the same hint, so that every 503 of
// the server says when to ask again; probes keep their own period.
const retryAfterUnavailable = "1"

// hasCode reports whether any of errs has the extension code.
func hasCode(errs gqlerror.List, code string) bool {
	for _, e := range errs {
		if c, ok := e.Extensions["code"].(string); ok && c == code {
			return true
		}
	}
	return false
}

// clip shortens client-supplied text quoted in an error message.
func clip(s string) string { return clipUTF8(s, 64) }
