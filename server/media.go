package server

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// mediaType is a media type a GraphQL response can be sent as.
type mediaType string

const (
	// mediaJSON is the legacy GraphQL response media type: request errors
	// are sent with 200.
	mediaJSON mediaType = "application/json"
	// mediaGraphQLResponse is the GraphQL-over-HTTP media type: a response
	// without data (a request error) is sent with 400.
	mediaGraphQLResponse mediaType = "application/graphql-response+json"
)

// contentType is the Content-Type header value for a body of media type m.
func (m mediaType) contentType() string {
	return string(m) + "; charset=utf-8"
}

// negotiate picks the response media type for r's Accept header. ok is
// false when Accept allows neither media type (the caller answers 406).
//
// application/graphql-response+json is chosen only when listed explicitly
// with a q-value at least that of application/json; wildcards and a missing
// Accept mean application/json. The spec's text after its 2025 watershed
// says a missing Accept SHOULD mean application/graphql-response+json; we
// keep application/json, as Apollo Server does, so that a client sending
// no Accept (Go's http.Client, say) keeps its 200s for GraphQL errors.
func negotiate(r *http.Request) (m mediaType, ok bool) {
	if !hasAccept(r) {
		return mediaJSON, true
	}
	m, _, _, ok = acceptPreferences(r).pick()
	return m, ok
}

// hasAccept reports whether r has an Accept header that says anything.
func hasAccept(r *http.Request) bool {
	return strings.TrimSpace(strings.Join(r.Header.Values("Accept"), "")) != ""
}

// jsonAsReadily returns the JSON media type negotiate picks for r when r's
// Accept header gives it, through a range other than */*, a q-value at
// least that of text/event-stream. urql's fetchExchange lists JSON and
// text/event-stream alike for every operation: a query or mutation then
// gets JSON, with the statuses of GraphQL over HTTP, and only a
// subscription needs a stream. graphql-sse and EventSource list
// text/event-stream alone.
func jsonAsReadily(r *http.Request) (mediaType, bool) {
	p := acceptPreferences(r)
	m, q, explicit, ok := p.pick()
	return m, ok && explicit && q >= p.eventStream
}

// fallbackMedia is the media type for error bodies sent before or instead
// of negotiation succeeding.
func fallbackMedia(r *http.Request) mediaType {
	if m, ok := negotiate(r); ok {
		return m
	}
	return mediaJSON
}

// preferences holds the q-values an Accept header gives the media ranges
// that matter here; -1 means the range is not listed.
type preferences struct {
	graphQLResponse float64
	applicationJSON float64
	applicationAny  float64
	anyAny          float64
	eventStream     float64
}

// acceptPreferences reads r's Accept headers. Elements that do not parse
// are ignored; a range listed twice keeps its highest q.
func acceptPreferences(r *http.Request) preferences {
	p := preferences{graphQLResponse: -1, applicationJSON: -1, applicationAny: -1, anyAny: -1, eventStream: -1}
	eachAcceptedRange(r, func(mt string, _ map[string]string, q float64) {
		switch mt {
		case string(mediaGraphQLResponse):
			p.graphQLResponse = max(p.graphQLResponse, q)
		case string(mediaJSON):
			p.applicationJSON = max(p.applicationJSON, q)
		case "application/*":
			p.applicationAny = max(p.applicationAny, q)
		case "*/*":
			p.anyAny = max(p.anyAny, q)
		case mediaEventStream:
			p.eventStream = max(p.eventStream, q)
		}
	})
	return p
}

// pick chooses the JSON media type: application/graphql-response+json
// only when listed explicitly with a q-value at least that of
// application/json, or when application/json is refused and a wildcard
// still takes it ("application/json;q=0, */*"). It returns the choice's
// q-value and whether a range other than */* gave it; ok is false when
// neither type is acceptable.
func (p preferences) pick() (m mediaType, q float64, explicit, ok bool) {
	jsonQ, jsonExplicit := p.byRange(p.applicationJSON)
	switch {
	case p.graphQLResponse > 0 && p.graphQLResponse >= jsonQ:
		return mediaGraphQLResponse, p.graphQLResponse, true, true
	case jsonQ > 0:
		return mediaJSON, jsonQ, jsonExplicit, true
	}
	if q, explicit := p.byRange(p.graphQLResponse); q > 0 {
		return mediaGraphQLResponse, q, explicit, true
	}
	return "", 0, false, false
}

// byRange is the q-value of an application/ type whose own q-value (-1:
// not listed) is exact: that of the most specific range matching it, so
// "application/json;q=0, */*" refuses application/json. explicit is false
// when only */* matches it.
func (p preferences) byRange(exact float64) (q float64, explicit bool) {
	for _, r := range []struct {
		q        float64
		explicit bool
	}{{exact, true}, {p.applicationAny, true}, {p.anyAny, false}} {
		if r.q >= 0 {
			return r.q, r.explicit
		}
	}
	return 0, false
}

// parseQ parses a q parameter; an absent one is 1.
func parseQ(s string) (float64, bool) {
	if s == "" {
		return 1, true
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || !(q >= 0 && q <= 1) { // NaN too, which compares false
		return 0, false
	}
	return q, true
}

// eachAcceptedRange calls fn for each media range r's Accept headers list,
// with its parameters and q-value; elements that do not parse, or whose q
// does not, are skipped.
func eachAcceptedRange(r *http.Request, fn func(mediaRange string, params map[string]string, q float64)) {
	for _, value := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(value, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := parseQ(params["q"]); ok {
				fn(mt, params, q)
			}
		}
	}
}
