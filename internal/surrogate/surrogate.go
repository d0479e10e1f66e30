// Package surrogate finds escapes of half a UTF-16 surrogate pair alone
// ("\ud800" not followed by "\udc00"–"\udfff", or the latter on its own)
// in JSON text and in GraphQL documents. Such an escape is no character:
// encoding/json and gqlparser decode it to U+FFFD, text the client did not
// send, so Herald refuses it instead (in request bodies, WebSocket
// messages, GraphQL string literals and token claims).
package surrogate

import (
	"strings"
	"unicode/utf8"
)

// LoneInJSON reports whether JSON text escapes half of a surrogate pair
// alone. Outside strings JSON has no backslash, so in valid JSON each one
// found begins an escape: data must be known to be JSON.
func LoneInJSON(data []byte) bool {
	for i := 0; ; {
		j := indexBackslash(data[i:])
		if j < 0 || i+j+1 >= len(data) {
			return false
		}
		i += j
		if data[i+1] != 'u' {
			i += 2
			continue
		}
		next, lone, ok := escapeAt(data, i)
		if !ok {
			return false
		}
		if lone {
			return true
		}
		i = next
	}
}

// LoneInGraphQL finds, in a GraphQL document, a string literal that
// escapes half of a surrogate pair alone, and returns the escape's line
// and column (1-based, a column counted in characters, as gqlparser
// counts them), or found false if there is none.
// The GraphQL spec (String Value) wants a Unicode scalar value there, and
// graphql-js refuses the document. Escapes count only inside a quoted
// string: a block string ("""…""") takes a backslash literally, and a
// comment (# to the end of the line) is not read. A document with no
// backslash, nearly every one, is looked at once.
func LoneInGraphQL(doc string) (line, col int, found bool) {
	if strings.IndexByte(doc, '\\') < 0 {
		return 0, 0, false
	}
	line, lineStart := 1, 0
	for i := 0; i < len(doc); i++ {
		switch c := doc[i]; {
		case lineBreak(doc, i):
			line, lineStart = line+1, i+1
		case c == '#':
			for i+1 < len(doc) && doc[i+1] != '\n' && doc[i+1] != '\r' {
				i++
			}
		case strings.HasPrefix(doc[i:], `"""`):
			i = blockStringEnd(doc, i+3, &line, &lineStart)
		case c == '"':
			// A quoted string ends at its quote or, unterminated (a syntax
			// error gqlparser reports), at the end of its line.
			for i++; i < len(doc) && doc[i] != '"' && doc[i] != '\n' && doc[i] != '\r'; i++ {
				if doc[i] != '\\' {
					continue
				}
				next, lone, ok := escapeAt(doc, i)
				switch {
				case lone:
					return line, utf8.RuneCountInString(doc[lineStart:i]) + 1, true
				case ok:
					i = next - 1
				default:
					i++ // the escaped character, which may be a quote
				}
			}
		}
	}
	return 0, 0, false
}

// lineBreak reports whether doc[i] ends a line (\n, \r\n counted at its
// \n, or a lone \r), as GraphQL counts lines.
func lineBreak(doc string, i int) bool {
	return doc[i] == '\n' || doc[i] == '\r' && (i+1 == len(doc) || doc[i+1] != '\n')
}

// blockStringEnd returns the index of the last quote of the block string
// whose text starts at i (or len(doc) if it is not closed), counting its
// lines. Inside one, only \""" is an escape. A run of more than three
// quotes closes it with its last three, the others being text, as
// gqlparser reads it: `"""She said "hi""""` is the string She said "hi".
func blockStringEnd(doc string, i int, line, lineStart *int) int {
	for ; i < len(doc); i++ {
		switch {
		case strings.HasPrefix(doc[i:], `\"""`):
			i += 3
		case doc[i] == '"':
			run := len(doc[i:]) - len(strings.TrimLeft(doc[i:], `"`))
			if run >= 3 {
				return i + run - 1
			}
			i += run - 1
		case lineBreak(doc, i):
			*line, *lineStart = *line+1, i+1
		}
	}
	return len(doc)
}

// escapeAt looks at the escape whose backslash is text[i]. ok is false
// unless it is \u and four hex digits. lone reports half a surrogate pair
// alone; otherwise next is the index just past the escape, or past the
// pair of escapes that make one character.
func escapeAt[T ~string | ~[]byte](text T, i int) (next int, lone, ok bool) {
	if i+1 >= len(text) || text[i+1] != 'u' {
		return 0, false, false
	}
	r, ok := hex4(text, i+2)
	switch {
	case !ok:
		return 0, false, false
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, true, true
	case r >= 0xD800 && r <= 0xDBFF:
		if i+7 >= len(text) || text[i+6] != '\\' || text[i+7] != 'u' {
			return 0, true, true
		}
		if lo, ok := hex4(text, i+8); !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, true, true
		}
		return i + 12, false, true
	}
	return i + 6, false, true
}

// hex4 reads the four hex digits at text[i:].
func hex4[T ~string | ~[]byte](text T, i int) (rune, bool) {
	if i+4 > len(text) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		switch c := text[k]; {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// indexBackslash is bytes.IndexByte(data, '\\'), without importing bytes
// for it alone.
func indexBackslash(data []byte) int {
	for i, c := range data {
		if c == '\\' {
			return i
		}
	}
	return -1
}
