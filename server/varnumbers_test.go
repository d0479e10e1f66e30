package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// echoQuery passes a variable of each kind to the fake schema's echo.
const echoQuery = `query($s: String, $b: Boolean, $i: Int, $f: Float, $id: ID, $l: [String!], $in: EchoInput) ` +
	`{ echo(s: $s, b: $b, i: $i, f: $f, id: $id, l: $l, in: $in) }`

// TestVariableNumbers: a JSON number in a variable whose type takes none
// is a request error naming the number, the type and the variable's path,
// not a value gqlparser takes for a string; numbers the types take run.
func TestVariableNumbers(t *testing.T) {
	s, _ := newTestServer(t, nil)
	refused := []struct {
		name, vars, msg string
		path            []any
	}{
		{"number as String", `{"s":5}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "s"}},
		{"number as Boolean", `{"b":1}`, "cannot use the number 1 as Boolean: a Boolean is not a number",
			[]any{"variable", "b"}},
		{"fraction as Int", `{"i":1.5}`, "cannot use the number 1.5 as Int: not an integer; write one without a fraction or exponent",
			[]any{"variable", "i"}},
		{"exponent as Int", `{"i":1e3}`, "cannot use the number 1e3 as Int: not an integer; write one without a fraction or exponent",
			[]any{"variable", "i"}},
		{"Int beyond 64 bits", `{"i":99999999999999999999}`, "cannot use the number 99999999999999999999 as Int: out of range",
			[]any{"variable", "i"}},
		{"Float beyond float64", `{"f":1e400}`, "cannot use the number 1e400 as Float: out of range",
			[]any{"variable", "f"}},
		{"fraction as ID", `{"id":1.5}`, "cannot use the number 1.5 as ID: an ID is a string or an integer",
			[]any{"variable", "id"}},
		{"number in a list of String", `{"l":["a",2]}`, "cannot use the number 2 as String: a String is not a number",
			[]any{"variable", "l", 1.0}},
		{"number coerced to a list of String", `{"l":3}`, "cannot use the number 3 as String: a String is not a number",
			[]any{"variable", "l"}},
		{"number in an input object", `{"in":{"s":5}}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "in", "s"}},
		{"fraction in an input object's list", `{"in":{"l":[1,2.5]}}`,
			"cannot use the number 2.5 as Int: not an integer; write one without a fraction or exponent",
			[]any{"variable", "in", "l", 1.0}},
		{"a long number is clipped", `{"s":` + strings.Repeat("9", 100) + `}`,
			fmt.Sprintf("cannot use the number %s as String: a String is not a number", clip(strings.Repeat("9", 100))),
			[]any{"variable", "s"}},
		// Of two bad variables the first is reported, whoever finds it.
		{"number before a bad Boolean", `{"s":5,"b":"yes"}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "s"}},
		{"bad Boolean before a number", `{"b":"yes","i":1.5}`, "cannot use string as Boolean",
			[]any{"variable", "b"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			w := send(t, s, post(`{"query":"`+echoQuery+`","variables":`+tc.vars+`}`).accepting())
			var body struct {
				Data   json.RawMessage
				Errors []gqlError
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", w.Body, err)
			}
			if w.Code != http.StatusBadRequest || body.Data != nil || len(body.Errors) != 1 {
				t.Fatalf("got %d %s, want 400 and one error without data", w.Code, w.Body)
			}
			e := body.Errors[0]
			if e.Message != tc.msg || e.Extensions["code"] != codeValidation || !reflect.DeepEqual(e.Path, tc.path) {
				t.Errorf("error %+v, want message %q, code %s, path %v", e, tc.msg, codeValidation, tc.path)
			}
		})
	}

	accepted := []string{
		`{"s":"5","b":true,"i":7,"f":1.5,"id":"a","l":["a"],"in":{"s":"x","i":-3,"l":[1,2]}}`,
		`{"i":-9223372036854775808,"f":2,"id":7}`,
		`{"f":1e300,"id":99999999999999999999}`,
		`{"l":"single","in":{"l":4}}`,
	}
	for _, vars := range accepted {
		t.Run("accepts "+vars, func(t *testing.T) {
			w := send(t, s, post(`{"query":"`+echoQuery+`","variables":`+vars+`}`).accepting())
			if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"errors"`) {
				t.Errorf("got %d %s, want 200 and data", w.Code, w.Body)
			}
		})
	}
}

// TestVariableNumbersOverWebSocket: a socket's variables are decoded as a
// POST body's are, and refused alike, as an error for the operation.
func TestVariableNumbersOverWebSocket(t *testing.T) {
	r := fakeReplica(t)
	c := r.dialTransport("ann")
	c.subscribe("subscribe", "x", echoQuery, map[string]any{"s": 5})
	f := wspExpect(c, "error", "x")
	wspSameJSON(t, string(f.Payload), `[{"message":"cannot use the number 5 as String: a String is not a number",`+
		`"path":["variable","s"],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]`)
	wspPingPong(c)
}
