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
	accept := strings.Join(r.Header.Values("Accept"), ",")
	if strings.TrimSpace(accept) == "" {
		return mediaJSON, true
	}
	p := preferences{graphQLResponse: -1, applicationJSON: -1, applicationAny: -1, anyAny: -1}
	for part := range strings.SplitSeq(accept, ",") {
		p.add(part)
	}
	gqlQ, jsonQ := p.graphQLResponse, p.json()
	switch {
	case gqlQ > 0 && gqlQ >= jsonQ:
		return mediaGraphQLResponse, true
	case jsonQ > 0:
		return mediaJSON, true
	default:
		return "", false
	}
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
}

// add records one comma-separated element of an Accept header. Elements
// that do not parse are ignored. A range listed twice keeps its highest q.
func (p *preferences) add(element string) {
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(element))
	if err != nil {
		return
	}
	q, ok := parseQ(params["q"])
	if !ok {
		return
	}
	switch mt {
	case string(mediaGraphQLResponse):
		p.graphQLResponse = max(p.graphQLResponse, q)
	case string(mediaJSON):
		p.applicationJSON = max(p.applicationJSON, q)
	case "application/*":
		p.applicationAny = max(p.applicationAny, q)
	case "*/*":
		p.anyAny = max(p.anyAny, q)
	}
}

// json is the q-value of application/json: that of the most specific range
// matching it, so "application/json;q=0, */*" refuses it.
func (p *preferences) json() float64 {
	for _, q := range []float64{p.applicationJSON, p.applicationAny, p.anyAny} {
		if q >= 0 {
			return q
		}
	}
	return 0
}

// parseQ parses a q parameter; an absent one is 1.
func parseQ(s string) (float64, bool) {
	if s == "" {
		return 1, true
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || q < 0 || q > 1 {
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
