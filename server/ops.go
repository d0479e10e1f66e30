package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// readinessTimeout bounds one run of Options.Readiness so that /readyz
// answers inside the shortest probe timeout orchestrators use by default,
// Kubernetes's 1 s: a check that hangs (a NATS link gone silent) then
// gets a 503 naming it rather than a probe timeout that names nothing.
const readinessTimeout = 800 * time.Millisecond

// jsonContentType is the Content-Type of the non-GraphQL JSON endpoints.
const jsonContentType = "application/json"

// serveHealthz reports that the process is alive and serving.
func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	s.responder.writeJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
	}{"ok"})
}

// readiness is the /readyz body.
type readiness struct {
	Ready  bool    `json:"ready"`
	Checks []Check `json:"checks"`
}

// serveReadyz runs the readiness checks: 200 when all pass, 503 (with
// Retry-After, see writeBody) otherwise. While the server drains, a
// failing "draining" check comes first.
func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readinessTimeout)
	defer cancel()
	body := readiness{Ready: true, Checks: []Check{}} // "checks": [] rather than null
	if s.draining.Load() {
		body.Checks = append(body.Checks, Check{Name: "draining", OK: false,
			Detail: "shutting down: closing WebSockets and refusing new ones"})
	}
	body.Checks = append(body.Checks, s.readiness(ctx)...)
	for _, c := range body.Checks {
		body.Ready = body.Ready && c.OK
	}
	status := http.StatusOK
	if !body.Ready {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	s.responder.writeJSON(w, status, body)
}

// noSniff tells browsers to take a body for the Content-Type it is sent
// as, never to sniff it into something else: error messages echo the
// request's text, which must not run as a script or a page that an
// attacker's <script src> or an old browser's sniffing would make of it.
func noSniff(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
}

// withNoSniff sets noSniff on every answer of h, a handler whose body
// this package does not write itself (/metrics).
func withNoSniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noSniff(w.Header())
		h.ServeHTTP(w, r)
	})
}

// serveNotFound answers paths no route matches.
func (s *Server) serveNotFound(w http.ResponseWriter, _ *http.Request) {
	s.responder.writeJSON(w, http.StatusNotFound, errorBody{"not found"})
}

// onlyGET answers methods other than GET and HEAD with 405.
func (s *Server) onlyGET(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			s.responder.writeJSON(w, http.StatusMethodNotAllowed, errorBody{"method not allowed"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// errorBody is the error shape of the non-GraphQL endpoints.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON writes v as an application/json body. The bodies of these
// endpoints are structs of strings and bools, so encoding cannot fail short
// of a bug, which gets a 500 rather than a partial body.
func (rs responder) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal server error"}`)
	}
	rs.writeBody(w, status, jsonContentType, b)
}

// writeBody writes b as the response, under the responder's write
// deadlines (answerDeadline). A 503 carries Retry-After
// (retryAfterUnavailable) unless its writer set one, whatever the
// endpoint: /graphql's and /readyz's alike.
func (rs responder) writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	h := w.Header()
	if status == http.StatusServiceUnavailable && h.Get("Retry-After") == "" {
		h.Set("Retry-After", retryAfterUnavailable)
	}
	h.Set("Content-Type", contentType)
	noSniff(h)
	w.WriteHeader(status)
	// A write error means the client went away, or stopped reading for
	// longer than the deadline and was dropped; nobody is left to tell.
	_, _ = rs.deadline.write(w, b)
}
