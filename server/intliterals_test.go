package server

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"testing"
)

// TestIntLiterals: an Int written in a query beyond 32 bits is a
// validation error at the literal, wherever it is written, as graphql-js
// has it; one beyond 64 bits gets gqlparser's error once, not two; Float
// and ID literals, and Ints within 32 bits, run.
func TestIntLiterals(t *testing.T) {
	s, _ := newTestServer(t, nil)
	const msg = "Int cannot represent non 32-bit signed integer value: "
	refused := []struct {
		name, query, literal string
		column               int
	}{
		{"argument", `{ echo(i: 2147483648) }`, "2147483648", 11},
		{"negative argument", `{ echo(i: -2147483649) }`, "-2147483649", 11},
		{"beyond 64 bits", `{ echo(i: 99999999999999999999) }`, "99999999999999999999", 11},
		{"in a list", `{ echo(in: {l: [1, 4294967296]}) }`, "4294967296", 20},
		{"in an input object", `{ echo(in: {i: 3000000000}) }`, "3000000000", 16},
		{"in an object of a list", `{ echo(ins: [{i: 1}, {i: 3000000000}]) }`, "3000000000", 26},
		{"a variable's default", `query($i: Int = 3000000000) { echo(i: $i) }`, "3000000000", 17},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"query": tc.query})
			e := refusedWithOne(t, send(t, s, post(string(body)).accepting()))
			wantLoc := []map[string]int{{"line": 1, "column": tc.column}}
			if e.Message != msg+tc.literal || e.Extensions["code"] != codeValidation || !reflect.DeepEqual(e.Locations, wantLoc) {
				t.Errorf("error %+v, want message %q, code %s, locations %v", e, msg+tc.literal, codeValidation, wantLoc)
			}
		})
	}

	accepted := []struct{ query, echo string }{
		{`{ echo(i: 2147483647) }`, "map[i:2147483647]"},
		{`{ echo(i: -2147483648) }`, "map[i:-2147483648]"},
		{`{ echo(f: 3000000000, id: 9223372036854775807) }`, "map[f:3000000000 id:9223372036854775807]"},
		{`{ echo(in: {l: [2147483647, -2147483648]}) }`, "map[in:map[l:[2147483647 -2147483648]]]"},
		{`query($i: Int = 2147483647) { echo(i: $i) }`, "map[i:2147483647]"},
	}
	for _, tc := range accepted {
		t.Run("accepts "+tc.query, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"query": tc.query})
			w := send(t, s, post(string(body)).accepting())
			want := `{"data":{"echo":` + strconv.Quote(tc.echo) + `}}`
			if w.Code != http.StatusOK || w.Body.String() != want {
				t.Errorf("got %d %s, want 200 %s", w.Code, w.Body, want)
			}
		})
	}
}
