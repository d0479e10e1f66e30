package surrogate

import (
	"fmt"
	"testing"
)

// TestSurrogateEdges: the last low surrogate (\udfff) ends a pair, a lone
// \r ends a line, a comment hides quotes, \""" does not close a block
// string, and a high surrogate whose next escape is cut short at the end
// of the text is lone (and nothing reads past the end).
func TestSurrogateEdges(t *testing.T) {
	for _, tt := range []struct {
		json string
		lone bool
	}{
		{`"\udbff\udfff"`, false}, // U+10FFFF: \udfff is a low surrogate
		{`"\ud800\udc00"`, false}, // U+10000
		{`"\ud800\`, true},        // the pair's second escape cut at the end
		{`"\ud800\u`, true},
	} {
		noPanic(t, "LoneInJSON("+tt.json+")", func() {
			if got := LoneInJSON([]byte(tt.json)); got != tt.lone {
				t.Errorf("LoneInJSON(%s) = %v, want %v", tt.json, got, tt.lone)
			}
		})
	}
	for _, tt := range []struct {
		doc       string
		line, col int // 0: none found
	}{
		{`{ hello(name: "\udbff\udfff") }`, 0, 0},
		// A lone \r ends a line, as GraphQL counts lines.
		{"{\r hello(name: \"\\ud800\")}", 2, 15},
		{"{\r\r hello(name: \"\\ud800\")}", 3, 15},
		// A comment is not read, quotes included.
		{"# say \"\\ud800\"\n{ hello }", 0, 0},
		// \""" is text in a block string: the string goes on after it.
		{`{ hello(name: """a \""" "\ud800" """) }`, 0, 0},
		// The pair's second escape cut short at the end of the document.
		{`{ hello(name: "\ud800\`, 1, 16},
	} {
		noPanic(t, fmt.Sprintf("LoneInGraphQL(%q)", tt.doc), func() {
			line, col, found := LoneInGraphQL(tt.doc)
			if found != (tt.line != 0) || line != tt.line || col != tt.col {
				t.Errorf("LoneInGraphQL(%q) = %d:%d %v, want %d:%d", tt.doc, line, col, found, tt.line, tt.col)
			}
		})
	}
}

// noPanic runs f, failing t (and going on) if it panics.
func noPanic(t *testing.T, call string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s panicked: %v", call, p)
		}
	}()
	f()
}
