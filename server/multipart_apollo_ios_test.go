package server

import (
	"strings"
	"testing"
)

// apolloIOSMultipartProtocol is a port of Apollo iOS 2's
// HTTPURLResponse.multipartHeaderComponents (ResponseParsing/
// HTTPURLResponse+MultipartHeaderComponents.swift) and
// JSONResponseParser.multipartParser(forProtocol:): the Content-Type is
// split at ";", a directive containing "Spec=" is taken verbatim as the
// protocol, and only the exact strings "subscriptionSpec=1.0" and
// "deferSpec=20220824" have a parser. Anything else fails the request
// with invalidMultipartProtocol.
func apolloIOSMultipartProtocol(contentType string) (boundary, protocol string, parser string) {
	for component := range strings.SplitSeq(contentType, ";") {
		directive := strings.TrimSpace(component)
		switch {
		case strings.HasPrefix(directive, "multipart/"):
		case strings.HasPrefix(directive, "boundary="):
			boundary = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(directive, "boundary="), `"`), `"`)
		case strings.Contains(directive, "Spec="):
			protocol = directive
		}
	}
	switch protocol {
	case "subscriptionSpec=1.0":
		parser = "MultipartResponseSubscriptionParser"
	case "deferSpec=20220824":
		parser = "MultipartResponseDeferParser"
	}
	return boundary, protocol, parser
}

// TestApolloIOSReadsMultipartContentType: Apollo iOS (which the
// README names among the clients of multipart subscriptions) picks the
// parser of a multipart response by the Content-Type's spec directive,
// compared as an exact string; Apollo's router sends
// subscriptionSpec=1.0, unquoted.
func TestApolloIOSReadsMultipartContentType(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("apollo-ios")
	for _, accept := range []string{
		"multipart/mixed;subscriptionSpec=1.0,application/graphql-response+json,application/json", // Apollo iOS's own
		acceptApollo4,
	} {
		c, resp, body := r.openMultipart(mpRequest{accept: accept, query: postedSub, vars: map[string]any{"r": room}})
		if c == nil {
			t.Fatalf("Accept %q: status %d: %s", accept, resp.StatusCode, body)
		}
		ct := resp.Header.Get("Content-Type")
		boundary, protocol, parser := apolloIOSMultipartProtocol(ct)
		if boundary != "graphql" || parser == "" {
			t.Errorf("Accept %q: Content-Type %q: Apollo iOS reads boundary %q, protocol %q, and finds no parser for it (invalidMultipartProtocol)",
				accept, ct, boundary, protocol)
		}
		_ = c.resp.Body.Close()
	}
}
