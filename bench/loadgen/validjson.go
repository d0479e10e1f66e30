package main

// validJSON reports whether b is exactly one JSON value (RFC 8259) with
// optional whitespace around it, as encoding/json's Valid does (neither
// checks that strings are valid UTF-8), at a fraction of its cost: every
// result the load generator counts is checked, on thousands of reader
// goroutines, and a frame cut short or otherwise broken must not count as
// a delivery. Nesting deeper than maxJSONDepth is refused.
func validJSON(b []byte) bool {
	i, ok := skipJSONValue(b, skipJSONSpace(b, 0), 0)
	return ok && skipJSONSpace(b, i) == len(b)
}

// maxJSONDepth bounds the nesting of objects and arrays validJSON takes
// (a delivery's frame nests four or five deep).
const maxJSONDepth = 1000

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipJSONValue returns the end of the value starting at b[i].
func skipJSONValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipJSONString(b, i)
	case c == '{', c == '[':
		if depth >= maxJSONDepth {
			return i, false
		}
		return skipJSONContainer(b, i, depth)
	case c == '-', c >= '0' && c <= '9':
		return skipJSONNumber(b, i)
	case c == 't':
		return skipJSONLiteral(b, i, "true")
	case c == 'f':
		return skipJSONLiteral(b, i, "false")
	case c == 'n':
		return skipJSONLiteral(b, i, "null")
	}
	return i, false
}

// skipJSONContainer returns the end of the object or array at b[i].
func skipJSONContainer(b []byte, i, depth int) (int, bool) {
	object := b[i] == '{'
	end := byte(']')
	if object {
		end = '}'
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == end {
		return i + 1, true
	}
	for {
		var ok bool
		if object {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			if i, ok = skipJSONString(b, i); !ok {
				return i, false
			}
			if i = skipJSONSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, false
			}
			i = skipJSONSpace(b, i+1)
		}
		if i, ok = skipJSONValue(b, i, depth+1); !ok {
			return i, false
		}
		if i = skipJSONSpace(b, i); i >= len(b) {
			return i, false
		}
		switch b[i] {
		case ',':
			i = skipJSONSpace(b, i+1)
		case end:
			return i + 1, true
		default:
			return i, false
		}
	}
}

// skipJSONString returns the end of the string whose quote is b[i].
func skipJSONString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return i, false
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// skipJSONNumber returns the end of the number starting at b[i]:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipJSONNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = skipJSONDigits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipJSONDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipJSONDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipJSONDigits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func skipJSONLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}
