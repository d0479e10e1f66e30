package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

const (
	// twoOperations is a valid document whose operation only an
	// operationName can choose.
	twoOperations = `query A { __typename } query B { __typename }`
	// twoOperationsError is what every transport answers it with.
	twoOperationsError = "the document has 2 operations (A, B); choose one with operationName"
	codeValidation     = "GRAPHQL_VALIDATION_FAILED"
)

func TestOperationNotChosen(t *testing.T) {
	ops := func(names ...string) ast.OperationList {
		var l ast.OperationList
		for _, n := range names {
			l = append(l, &ast.OperationDefinition{Name: n})
		}
		return l
	}
	long := strings.Repeat("n", 100)
	tests := []struct {
		name string
		ops  ast.OperationList
		op   string // the operationName sent
		want string
	}{
		{"several, no name", ops("A", "B", "C"), "",
			"the document has 3 operations (A, B, C); choose one with operationName"},
		{"many, no name: five listed", ops("A", "B", "C", "D", "E", "F", "G"), "",
			"the document has 7 operations (A, B, C, D, E, and 2 more); choose one with operationName"},
		{"unknown name", ops("A"), "B",
			`operation "B" not found: the document has 1 operation (A)`},
		{"unknown name among several", ops("A", "B"), "C",
			`operation "C" not found: the document has 2 operations (A, B)`},
		{"a name for an anonymous operation", ops(""), "A",
			`operation "A" not found: the document's one operation is anonymous; send no operationName`},
		{"a long name is clipped", ops("A"), long,
			fmt.Sprintf(`operation %q not found: the document has 1 operation (A)`, clip(long))},
		{"a long operation is clipped", ops(long, "B"), "",
			fmt.Sprintf("the document has 2 operations (%s, B); choose one with operationName", clip(long))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := operationNotChosen(tt.ops, tt.op)
			if err.Message != tt.want {
				t.Errorf("message\n  %q\nwant\n  %q", err.Message, tt.want)
			}
			if err.Extensions["code"] != codeValidation {
				t.Errorf("extensions %v, want code %s", err.Extensions, codeValidation)
			}
		})
	}
}

// TestOperationNotChosenOverHTTP: a document of several operations and no
// operationName gets the same precise error, in each HTTP transport's own
// shape: a request error (400 as graphql-response+json) on GET and POST,
// and on a multipart request, which answers errors before the stream as
// POST does; one "next" event then "complete" on an event stream.
func TestOperationNotChosenOverHTTP(t *testing.T) {
	s, _ := newTestServer(t, nil)
	body := `{"query":"` + twoOperations + `"}`
	plain := want{status: 200, contentType: ctJSON, err: twoOperationsError, code: codeValidation}
	strict := want{status: 400, contentType: ctResponse, err: twoOperationsError, code: codeValidation}
	for _, tc := range []struct {
		name string
		req  request
		want want
	}{
		{"POST as application/json", post(body), plain},
		{"POST as graphql-response+json", post(body).accepting(), strict},
		{"GET as application/json", get("query", twoOperations), plain},
		{"GET as graphql-response+json", get("query", twoOperations).accepting(), strict},
		{"POST operationName empty", post(`{"query":"` + twoOperations + `","operationName":""}`).accepting(), strict},
		{"multipart POST", post(body).with("Accept", acceptApollo4), strict},
		{"multipart GET", get("query", twoOperations).with("Accept", acceptApollo4), strict},
		{"event stream or JSON", post(body).with("Accept", "text/event-stream, application/json"), plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, send(t, s, tc.req), tc.want)
		})
	}

	wantStream := ":\n\nevent: next\ndata: " +
		`{"errors":[{"message":"` + twoOperationsError + `","extensions":{"code":"` + codeValidation + `"}}]}` +
		"\n\nevent: complete\ndata:\n\n"
	for _, tc := range []struct {
		name string
		req  request
	}{
		{"event stream POST", post(body).with("Accept", mediaEventStream)},
		{"event stream GET", get("query", twoOperations).with("Accept", mediaEventStream)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := send(t, s, tc.req)
			if w.Code != http.StatusOK || w.Body.String() != wantStream {
				t.Errorf("got %d %q, want 200 %q", w.Code, w.Body, wantStream)
			}
		})
	}
}

// fakeReplica serves the fake schema on a loopback listener, for the
// WebSocket and single-connection-mode helpers, without NATS.
func fakeReplica(t *testing.T) *replica {
	t.Helper()
	s, _ := newTestServer(t, nil)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &replica{t: t, server: s, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
}

// TestOperationNotChosenOverStreams: the same document over both WebSocket
// protocols and graphql-sse's single connection mode ends only its own
// operation, with the precise error, as each protocol ends an operation
// that fails validation; the socket or stream goes on serving.
func TestOperationNotChosenOverStreams(t *testing.T) {
	r := fakeReplica(t)
	wantErrors := func(t *testing.T, raw json.RawMessage) {
		t.Helper()
		var errs []wspGQLError
		if err := json.Unmarshal(raw, &errs); err != nil || len(errs) != 1 ||
			errs[0].Message != twoOperationsError || errs[0].Extensions["code"] != codeValidation {
			t.Fatalf("errors %s, want exactly %q with code %s (%v)", raw, twoOperationsError, codeValidation, err)
		}
	}
	resultErrors := func(t *testing.T, payload json.RawMessage) json.RawMessage {
		t.Helper()
		var p struct {
			Data   json.RawMessage `json:"data"`
			Errors json.RawMessage `json:"errors"`
		}
		if err := json.Unmarshal(payload, &p); err != nil || p.Data != nil {
			t.Fatalf("payload %s: want the errors without a data entry: the operation never ran (%v)", payload, err)
		}
		return p.Errors
	}

	t.Run("graphql-transport-ws", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dialTransport("ann")
		c.subscribe("subscribe", "x", twoOperations, nil)
		wantErrors(t, wspExpect(c, "error", "x").Payload)
		wspPingPong(c) // nothing else for x, and the socket is open
		c.subscribe("subscribe", "x", "{ whoami }", nil)
		wspSameJSON(t, wspExpect(c, "next", "x").raw, `{"id":"x","type":"next","payload":{"data":{"whoami":"ann"}}}`)
		wspExpectComplete(c, "x")
	})
	t.Run("graphql-ws", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dialLegacy("ann")
		c.subscribe("start", "x", twoOperations, nil)
		wantErrors(t, resultErrors(t, wspExpect(c, "data", "x").Payload))
		wspExpectComplete(c, "x")
		c.subscribe("start", "x", "{ whoami }", nil)
		wspSameJSON(t, wspExpect(c, "data", "x").raw, `{"id":"x","type":"data","payload":{"data":{"whoami":"ann"}}}`)
		wspExpectComplete(c, "x")
	})
	t.Run("graphql-sse single connection mode", func(t *testing.T) {
		r := r.forTest(t)
		token := r.reserve("ann")
		c := r.openSingle(token, "ann")
		r.mustOperate(token, "ann", "x", twoOperations, nil)
		wantErrors(t, resultErrors(t, c.expect("next", "x").payload))
		c.expect("complete", "x")
		r.mustOperate(token, "ann", "y", "{ whoami }", nil)
		if ev := c.expect("next", "y"); string(ev.payload) != `{"data":{"whoami":"ann"}}` {
			t.Fatalf("payload %s, want the query's result", ev.payload)
		}
		c.expect("complete", "y")
	})
}
