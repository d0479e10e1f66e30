package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
)

// graphiQLIntrospectionQuery is the shape of the query GraphiQL 3.9 sends
// on load (graphql-js getIntrospectionQuery, trimmed: the error is on
// __schema itself, so what is selected below it does not matter).
const graphiQLIntrospectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { kind name description }
    directives { name description locations }
  }
}`

// GraphiQL is served at / whatever the introspection setting (off by
// default with --auth jwt). With introspection off, Herald answered its
// introspection query {"errors":[…"introspection disabled"…],
// "data":{"__schema":null}}: a null in the non-null __schema. GraphiQL 3.9
// takes any answer whose data has a "__schema" key for an introspection
// result, and buildClientSchema threw "Invalid or incomplete introspection
// result ... { __schema: null }": the user never saw the reason. The
// document is refused in validation now, as Apollo Server does: errors,
// no data.
func TestIntrospectionOffIsRefusedInValidation(t *testing.T) {
	// The GraphiQL bundle Herald serves decides this way.
	bundle, err := os.ReadFile("graphiql/static/vendor/graphiql/graphiql.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(bundle, []byte(`.data)&&"__schema"in `)) {
		t.Fatalf("graphiql.min.js no longer checks for a \"__schema\" key in data; revisit this test")
	}

	r := newReplica(t, func(o *Options) { o.Introspection = false })
	body, _ := json.Marshal(map[string]any{"query": graphiQLIntrospectionQuery, "operationName": "IntrospectionQuery"})
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(body))
	// What GraphiQL's fetcher sends: JSON, and fetch's default Accept.
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "*/*")
	resp, err := doBounded(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %d %q is not JSON: %v", resp.StatusCode, raw, err)
	}
	if len(out.Errors) == 0 || !strings.Contains(out.Errors[0].Message, "introspection") ||
		out.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
		t.Errorf("response %s has no validation error naming introspection", raw)
	}
	if out.Data != nil {
		t.Errorf("response %s has data; a document refused in validation has none", raw)
	}
	var data map[string]json.RawMessage
	if len(out.Data) > 0 && string(out.Data) != "null" {
		_ = json.Unmarshal(out.Data, &data)
	}
	if _, has := data["__schema"]; has {
		t.Errorf("introspection disabled: response %s\nhas \"data\" with a \"__schema\" key (null in the non-null __Schema! field; "+
			"the spec propagates it to \"data\": null). GraphiQL 3.9 treats that as an introspection result, "+
			"buildClientSchema throws \"Invalid or incomplete introspection result\", and the user never sees \"introspection disabled\"", raw)
	}
}
