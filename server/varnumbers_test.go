package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
)

// echoQuery passes a variable of each kind to the fake schema's echo.
const echoQuery = `query($s: String, $b: Boolean, $i: Int, $f: Float, $id: ID, $l: [String!], $in: EchoInput, ` +
	`$ins: [EchoInput!], $e: Tone, $x: Opaque) { echo(s: $s, b: $b, i: $i, f: $f, id: $id, l: $l, in: $in, ins: $ins, e: $e, x: $x) }`

// TestVariableNumbers: a JSON number in a variable whose type takes none,
// or not that one, and a string in one whose type takes a number or a
// Boolean, are a request error naming the value, the type and the
// variable's path, not a value gqlparser takes for another; the numbers
// and strings the types take run, an integer written with a fraction or
// an exponent as the integer it is.
func TestVariableNumbers(t *testing.T) {
	s, _ := newTestServer(t, nil)
	const notInteger = "not an integer"
	refused := []struct {
		name, vars, msg string
		path            []any
	}{
		{"number as String", `{"s":5}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "s"}},
		{"number as Boolean", `{"b":1}`, "cannot use the number 1 as Boolean: a Boolean is not a number",
			[]any{"variable", "b"}},
		{"fraction as Int", `{"i":1.5}`, "cannot use the number 1.5 as Int: " + notInteger,
			[]any{"variable", "i"}},
		{"negative exponent as Int", `{"i":1e-3}`, "cannot use the number 1e-3 as Int: " + notInteger,
			[]any{"variable", "i"}},
		{"fraction beyond its zeros as Int", `{"i":2.000001}`, "cannot use the number 2.000001 as Int: " + notInteger,
			[]any{"variable", "i"}},
		{"huge negative exponent as Int", `{"i":1e-999999999}`, "cannot use the number 1e-999999999 as Int: " + notInteger,
			[]any{"variable", "i"}},
		// An Int is a 32-bit signed integer, however it is written.
		{"Int beyond 32 bits", `{"i":2147483648}`, "cannot use the number 2147483648 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"Int below 32 bits", `{"i":-2147483649}`, "cannot use the number -2147483649 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"Int beyond 64 bits", `{"i":99999999999999999999}`, "cannot use the number 99999999999999999999 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"exponent beyond 32 bits as Int", `{"i":1e10}`, "cannot use the number 1e10 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"fraction beyond 32 bits as Int", `{"i":2147483648.0}`, "cannot use the number 2147483648.0 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"exponent of 64 bits as Int", `{"i":-9.223372036854775808e18}`,
			"cannot use the number -9.223372036854775808e18 as Int: " + intRange, []any{"variable", "i"}},
		{"Int beyond 32 bits in an input object's list", `{"in":{"l":[1,3000000000]}}`,
			"cannot use the number 3000000000 as Int: " + intRange, []any{"variable", "in", "l", 1.0}},
		{"huge exponent as Int", `{"i":1e999999999}`, "cannot use the number 1e999999999 as Int: " + intRange,
			[]any{"variable", "i"}},
		{"exponent beyond int64 as Int", `{"i":-1E99999999999999999999999}`,
			"cannot use the number -1E99999999999999999999999 as Int: " + intRange, []any{"variable", "i"}},
		{"Float beyond float64", `{"f":1e400}`, "cannot use the number 1e400 as Float: out of range",
			[]any{"variable", "f"}},
		{"fraction as ID", `{"id":1.5}`, "cannot use the number 1.5 as ID: an ID is a string or an integer",
			[]any{"variable", "id"}},
		{"exponent beyond 64 bits as ID", `{"id":1e19}`,
			"cannot use the number 1e19 as ID: out of range; write an ID this large as a string or without a fraction or exponent",
			[]any{"variable", "id"}},
		{"huge exponent as ID", `{"id":1e999999999}`,
			"cannot use the number 1e999999999 as ID: out of range; write an ID this large as a string or without a fraction or exponent",
			[]any{"variable", "id"}},
		{"number in a list of String", `{"l":["a",2]}`, "cannot use the number 2 as String: a String is not a number",
			[]any{"variable", "l", 1.0}},
		{"number coerced to a list of String", `{"l":3}`, "cannot use the number 3 as String: a String is not a number",
			[]any{"variable", "l"}},
		{"number in an input object", `{"in":{"s":5}}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "in", "s"}},
		{"fraction in an input object's list", `{"in":{"l":[1,2.5]}}`,
			"cannot use the number 2.5 as Int: " + notInteger, []any{"variable", "in", "l", 1.0}},
		{"a long number is clipped", `{"s":` + strings.Repeat("9", 100) + `}`,
			fmt.Sprintf("cannot use the number %s as String: a String is not a number", clip(strings.Repeat("9", 100))),
			[]any{"variable", "s"}},

		// Strings that spell a number or a Boolean.
		{"string as Int", `{"i":"2"}`, `cannot use the string "2" as Int: an Int is a JSON number`,
			[]any{"variable", "i"}},
		{"string as Float", `{"f":"1.5"}`, `cannot use the string "1.5" as Float: a Float is a JSON number`,
			[]any{"variable", "f"}},
		{"string as Boolean", `{"b":"true"}`, `cannot use the string "true" as Boolean: a Boolean is true or false`,
			[]any{"variable", "b"}},
		{"string in an input object", `{"in":{"f":"2"}}`, `cannot use the string "2" as Float: a Float is a JSON number`,
			[]any{"variable", "in", "f"}},
		{"string in an input object's list", `{"in":{"l":[1,"2"]}}`, `cannot use the string "2" as Int: an Int is a JSON number`,
			[]any{"variable", "in", "l", 1.0}},
		{"string coerced to a list of Int", `{"in":{"l":"3"}}`, `cannot use the string "3" as Int: an Int is a JSON number`,
			[]any{"variable", "in", "l"}},
		{"fraction coerced to a list of ID", `{"in":{"ids":1.5}}`,
			"cannot use the number 1.5 as ID: an ID is a string or an integer", []any{"variable", "in", "ids"}},
		{"string in an object coerced to a list of them", `{"ins":{"i":"2"}}`,
			`cannot use the string "2" as Int: an Int is a JSON number`, []any{"variable", "ins", "i"}},
		{"number in an object in a list of them", `{"ins":[{},{"s":5}]}`,
			"cannot use the number 5 as String: a String is not a number", []any{"variable", "ins", 1.0, "s"}},
		{"a string is quoted", `{"i":"a\"\n"}`, `cannot use the string "a\"\n" as Int: an Int is a JSON number`,
			[]any{"variable", "i"}},
		{"a long string is clipped", `{"i":"` + strings.Repeat("7", 150) + `"}`,
			fmt.Sprintf("cannot use the string %q as Int: an Int is a JSON number", clip(strings.Repeat("7", 150))),
			[]any{"variable", "i"}},

		// Of two bad variables the first is reported, whoever finds it.
		{"number before a bad Boolean", `{"s":5,"b":"yes"}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "s"}},
		{"bad Boolean before a number", `{"b":"yes","i":1.5}`, `cannot use the string "yes" as Boolean: a Boolean is true or false`,
			[]any{"variable", "b"}},
		{"gqlparser's refusal before a number", `{"s":{},"i":1.5}`, "cannot use map as String",
			[]any{"variable", "s"}},
		{"gqlparser's refusal before a string", `{"s":{},"i":"2"}`, "cannot use map as String",
			[]any{"variable", "s"}},
		// An integer written with an exponent is no error, before or after one.
		{"integer by exponent before a bad number", `{"i":1e3,"id":1.5}`,
			"cannot use the number 1.5 as ID: an ID is a string or an integer", []any{"variable", "id"}},
		{"bad number before an integer by exponent", `{"s":5,"i":1e3}`, "cannot use the number 5 as String: a String is not a number",
			[]any{"variable", "s"}},
		{"integer by fraction before a bad one in an object", `{"i":2.0,"in":{"i":1e3,"l":[2.0,2.5]}}`,
			"cannot use the number 2.5 as Int: " + notInteger, []any{"variable", "in", "l", 1.0}},
		{"integer by fraction before an unknown enum value", `{"i":2.0,"e":"MIDDLE"}`, `"MIDDLE" is not a valid Tone`,
			[]any{"variable", "e"}},
		// An enum value is its exact name (gqlparser ignores case, and the
		// operation would run until the resolver's unmarshaling failed).
		{"enum value in another case", `{"e":"low"}`, `"low" is not a valid Tone; enum values are matched exactly: did you mean LOW?`,
			[]any{"variable", "e"}},
		{"enum value in another case after an input object", `{"in":{"i":1},"e":"High"}`,
			`"High" is not a valid Tone; enum values are matched exactly: did you mean HIGH?`, []any{"variable", "e"}},
		{"number as an enum", `{"e":1}`, `1 is not a valid Tone`, []any{"variable", "e"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			e := refusedWithOne(t, send(t, s, post(`{"query":"`+echoQuery+`","variables":`+tc.vars+`}`).accepting()))
			if e.Message != tc.msg || e.Extensions["code"] != codeValidation || !reflect.DeepEqual(e.Path, tc.path) {
				t.Errorf("error %+v, want message %q, code %s, path %v", e, tc.msg, codeValidation, tc.path)
			}
		})
	}

	// The values the resolver is given, as echo prints them: an integer
	// written with a fraction or an exponent is the integer.
	accepted := []struct{ vars, echo string }{
		{`{"s":"5","b":true,"i":7,"f":1.5,"id":"a","l":["a"],"in":{"s":"x","i":-3,"l":[1,2]}}`,
			"map[b:true f:1.5 i:7 id:a in:map[i:-3 l:[1 2] s:x] l:[a] s:5]"},
		{`{"i":-2147483648,"f":2,"id":7}`, "map[f:2 i:-2147483648 id:7]"},
		{`{"i":2147483647,"f":3000000000,"id":9223372036854775807}`, "map[f:3e+09 i:2147483647 id:9223372036854775807]"},
		{`{"f":1e300,"id":99999999999999999999}`, "map[f:1e+300 id:99999999999999999999]"},
		{`{"l":"single","in":{"l":4}}`, "map[in:map[l:[4]] l:[single]]"},
		// Strings where the type takes them.
		{`{"id":"7","e":"LOW","x":"anything"}`, "map[e:LOW id:7 x:anything]"},
		{`{"id":"1.0","s":"2","in":{"id":"2e3","s":"3"}}`, "map[id:1.0 in:map[id:2e3 s:3] s:2]"},
		{`{"x":5}`, "map[x:5]"}, // a custom scalar's own unmarshaler judges a number
		// Integers written with a fraction or an exponent.
		{`{"i":2.0}`, "map[i:2]"},
		{`{"i":1e3}`, "map[i:1000]"},
		{`{"i":1E+3}`, "map[i:1000]"},
		{`{"i":-0.0}`, "map[i:0]"},
		{`{"i":0e999999999}`, "map[i:0]"},
		{`{"i":3000e-3}`, "map[i:3]"},
		{`{"i":2147483647e0,"f":-2.147483648e9}`, "map[f:-2.147483648e+09 i:2147483647]"},
		{`{"i":-2.147483648e9}`, "map[i:-2147483648]"},
		{`{"i":21474836.47e2}`, "map[i:2147483647]"},
		{`{"id":1.0}`, "map[id:1]"},
		{`{"id":-1.5e18}`, "map[id:-1500000000000000000]"},
		{`{"in":{"i":1e2,"l":[1.0,2e0],"id":30e-1}}`, "map[in:map[i:100 id:3 l:[1 2]]]"},
		{`{"in":{"l":3.0}}`, "map[in:map[l:[3]]]"},
		{`{"in":{"ids":1.0}}`, "map[in:map[ids:[1]]]"},
		{`{"ins":{"i":1e3}}`, "map[ins:[map[i:1000]]]"},
		{`{"ins":[{"l":2.0},{"i":1e3}]}`, "map[ins:[map[l:[2]] map[i:1000]]]"},
		{`{"in":{"ids":[1.0,"1.0",2]}}`, "map[in:map[ids:[1 1.0 2]]]"},
	}
	for _, tc := range accepted {
		t.Run("accepts "+tc.vars, func(t *testing.T) {
			w := send(t, s, post(`{"query":"`+echoQuery+`","variables":`+tc.vars+`}`).accepting())
			want := `{"data":{"echo":"` + tc.echo + `"}}`
			if w.Code != http.StatusOK || w.Body.String() != want {
				t.Errorf("got %d %s, want 200 %s", w.Code, w.Body, want)
			}
		})
	}
}

// refusedWithOne returns the one error of w, a request refused as a
// whole: 400, as application/graphql-response+json has it, and no data.
func refusedWithOne(t *testing.T, w *httptest.ResponseRecorder) gqlError {
	t.Helper()
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
	return body.Errors[0]
}

// TestVariableNumbersOverWebSocket: a socket's variables are decoded as a
// POST body's are, and refused alike, as an error for the operation, or
// taken alike, an integer written with an exponent as the integer.
func TestVariableNumbersOverWebSocket(t *testing.T) {
	r := fakeReplica(t)
	c := r.dialTransport("ann")
	c.subscribe("subscribe", "x", echoQuery, map[string]any{"s": 5})
	f := wspExpect(c, "error", "x")
	wspSameJSON(t, string(f.Payload), `[{"message":"cannot use the number 5 as String: a String is not a number",`+
		`"path":["variable","s"],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]`)
	c.subscribe("subscribe", "y", echoQuery, map[string]any{"i": "2"})
	f = wspExpect(c, "error", "y")
	wspSameJSON(t, string(f.Payload), `[{"message":"cannot use the string \"2\" as Int: an Int is a JSON number",`+
		`"path":["variable","i"],"extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}]`)
	c.subscribe("subscribe", "z", echoQuery, map[string]any{"i": json.Number("1e3"), "in": map[string]any{"l": json.Number("2.0")}})
	wspSameJSON(t, wspExpect(c, "next", "z").raw, `{"id":"z","type":"next","payload":{"data":{"echo":"map[i:1000 in:map[l:[2]]]"}}}`)
	wspExpectComplete(c, "z")
	wspPingPong(c)
}

// TestExactInteger: a JSON number's value is read exactly, written as the
// integer it is if it is one of the digits allowed, and neither written
// out nor taken for an integer otherwise, whatever its exponent.
func TestExactInteger(t *testing.T) {
	tests := []struct {
		text      string
		maxDigits int
		want      string
		integral  bool
	}{
		{"0", 19, "0", true},
		{"-0", 19, "0", true},
		{"-0.0e-5", 19, "0", true},
		{"0e99999999999999999999", 19, "0", true},
		{"7", 19, "7", true},
		{"-12", 19, "-12", true},
		{"2.0", 19, "2", true},
		{"00012.000", 19, "12", true},
		{"1e3", 19, "1000", true},
		{"1E+3", 19, "1000", true},
		{"12.5e1", 19, "125", true},
		{"100e-2", 19, "1", true},
		{"-1.5e18", 19, "-1500000000000000000", true},
		{"9999999999", 10, "9999999999", true}, // as many digits as allowed
		{"1e10", 10, "", true},                 // one more
		{"1e999999999", 19, "", true},
		{"-1E99999999999999999999999", 19, "", true},
		{"1.5", 19, "", false},
		{"125e-1", 19, "", false},
		{"1e-3", 19, "", false},
		{"1e-999999999", 19, "", false},
		{"1e-99999999999999999999", 19, "", false},
		{"", 19, "", false},
		{"-", 19, "", false},
		{"e5", 19, "", false},
		{"1e", 19, "", false},
		{"1e+", 19, "", false},
		{"1x", 19, "", false},
		{"1.5.5", 19, "", false},
		{"1e_5", 19, "", false},
	}
	for _, tt := range tests {
		got, integral := exactInteger(tt.text, tt.maxDigits)
		if got != tt.want || integral != tt.integral {
			t.Errorf("exactInteger(%q, %d) = %q, %v; want %q, %v", tt.text, tt.maxDigits, got, integral, tt.want, tt.integral)
		}
	}
}

// TestCanonicalNumbersPrepareAlike: preparing the same params again, or
// other params holding the same variables, gives the same variables; the
// integers are rewritten in a copy, and the variables the caller gave are
// left as they were.
func TestCanonicalNumbersPrepareAlike(t *testing.T) {
	fs := newFakeSchema(t)
	x := preciseExecutor{GraphExecutor: executor.New(fs), schema: fs.Schema()}
	const raw = `{"s":"a","i":1e3,"id":1.0,"in":{"s":"b","l":[2.0,3],"id":"4.0"}}`
	decode := func() map[string]any {
		v, err := decodeJSON("variables", []byte(raw))
		if err != nil {
			t.Fatal(err.msg)
		}
		return v.(map[string]any)
	}
	given := decode()
	wantCanonical := map[string]any{"s": "a", "i": json.Number("1000"), "id": json.Number("1"),
		"in": map[string]any{"s": "b", "l": []any{json.Number("2"), json.Number("3")}, "id": "4.0"}}

	prepare := func(params *graphql.RawParams) {
		t.Helper()
		opCtx, errs := x.CreateOperationContext(graphql.StartOperationTrace(context.Background()), params)
		if errs != nil {
			t.Fatalf("errors %v", errs)
		}
		if got := fmt.Sprint(opCtx.Variables); got != "map[i:1000 id:1 in:map[id:4.0 l:[2 3] s:b] s:a]" {
			t.Errorf("variables %s", got)
		}
		if !reflect.DeepEqual(params.Variables, wantCanonical) {
			t.Errorf("params' variables %#v, want %#v", params.Variables, wantCanonical)
		}
	}
	params := &graphql.RawParams{Query: echoQuery, Variables: given}
	prepare(params)
	prepare(params) // again: nothing left to rewrite
	prepare(&graphql.RawParams{Query: echoQuery, Variables: given})
	if !reflect.DeepEqual(given, decode()) {
		t.Errorf("the caller's variables became %#v", given)
	}
}
