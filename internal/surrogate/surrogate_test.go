package surrogate

import "testing"

// TestLoneInJSON: only an escape of half a surrogate pair on its own
// is refused; pairs, other escapes and escaped backslashes are text.
func TestLoneInJSON(t *testing.T) {
	for _, tt := range []struct {
		json string
		lone bool
	}{
		{`"plain"`, false},
		{`"\ud83d\ude00"`, false}, // a pair: U+1F600
		{`"\uD83D\uDE00"`, false},
		{`"\u00e9\n\"\\"`, false},
		{`"\\ud800"`, false}, // a backslash, then the text ud800
		{`"\ud800"`, true},
		{`"\udfff"`, true},
		{`"\ud800\u0041"`, true},
		{`"\ud800\n"`, true},
		{`"\ud83d\ude00\ud800"`, true},
		{`"x\ud800`, true},
		{`"\u12"`, false}, // malformed: the decoder's to refuse
		{`"\`, false},
	} {
		if got := LoneInJSON([]byte(tt.json)); got != tt.lone {
			t.Errorf("LoneInJSON(%s) = %v, want %v", tt.json, got, tt.lone)
		}
	}
}

// TestLoneInGraphQL: a lone half of a pair is found only in a quoted
// string's \uXXXX escape, where it is reported at its backslash; pairs,
// braced escapes, escaped backslashes, block strings and comments are
// left to the GraphQL parser.
func TestLoneInGraphQL(t *testing.T) {
	for _, tt := range []struct {
		doc       string
		line, col int // 0: none found
	}{
		{`{ hello(name: "plain") }`, 0, 0},
		{`{ hello(name: "\ud83d\ude00") }`, 0, 0},
		{`{ hello(name: "\uD83D\uDE00 \u00e9 \n \" \\") }`, 0, 0},
		{`{ hello(name: "\u{1F600}") }`, 0, 0},
		{`{ hello(name: "\\ud800") }`, 0, 0},    // a backslash, then the text ud800
		{`{ hello(name: """\ud800""") }`, 0, 0}, // block strings take \ literally
		{`{ hello(name: """a \""" \ud800""") }`, 0, 0},
		{"# \\ud800 in a comment\n{ hello }", 0, 0},
		// A run of more than three quotes closes a block string with its
		// last three, as gqlparser reads it: """x"""" is the string x".
		{`{ a: hello(name: """x"""") b: hello(name: "\ud800") }`, 1, 44},
		{"{ hello(name: \"\"\"x\"\"\"\") # a comment: \\ud800\n}", 0, 0},
		{`{ a: hello(name: """x"""""") b: hello(name: "\udc00") }`, 1, 46},
		{`{ a: hello(name: """x""""""") b: hello(name: "\udc00") }`, 1, 47},
		{`{ hello(name: "\u12") }`, 0, 0}, // malformed: the parser's to refuse
		{`{ hello(name: "a\ud800b") }`, 1, 17},
		{`{ hello(name: "\udc00") }`, 1, 16},
		{`{ hello(name: "\uD83D") }`, 1, 16},
		{`{ hello(name: "\uDE00x") }`, 1, 16},
		{`{ hello(name: "\ud800\u0041") }`, 1, 16},
		{`{ hello(name: "\ud83d\ude00\ud800") }`, 1, 28},
		{`{ hello(name: "\"\ud800") }`, 1, 18}, // after an escaped quote
		{`{ hello(name: "é\ud800") }`, 1, 17},  // columns count characters
		{"{\n  a: hello(name: \"\"\"x\ny\"\"\")\n  b: hello(name: \"\\ud800\")\n}", 4, 19},
		{"{\r\n hello(name: \"\\udbff\")}", 2, 15},
		{`{ hello(name: "unterminated \ud800`, 1, 29},
	} {
		line, col, found := LoneInGraphQL(tt.doc)
		if found != (tt.line != 0) || line != tt.line || col != tt.col {
			t.Errorf("LoneInGraphQL(%q) = %d:%d %v, want %d:%d", tt.doc, line, col, found, tt.line, tt.col)
		}
	}
}
