package chat

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// parseEventJSON decodes one event object as encoding/json decodes it into
// Event with DisallowUnknownFields, except that it is stricter: keys must
// match in case, and nothing may follow the object.
// Every replica decodes every event of the log, so this runs once per event
// per replica: it reads the flat object directly instead of through
// reflection and a Decoder's buffers, which cost several times as much.
// Strings with escapes or invalid UTF-8 are left to encoding/json, so they
// decode exactly as before.
func parseEventJSON(data []byte) (Event, error) {
	var e Event
	p := eventParser{data: data}
	if err := p.object(&e, false); err != nil {
		return Event{}, err
	}
	p.space()
	if p.i != len(p.data) {
		return Event{}, p.fail("data after the event object")
	}
	return e, nil
}

type eventParser struct {
	data []byte
	i    int
}

func (p *eventParser) fail(what string) error {
	return fmt.Errorf("%s at offset %d", what, p.i)
}

func (p *eventParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, or fails.
func (p *eventParser) consume(c byte) error {
	p.space()
	if p.i >= len(p.data) || p.data[p.i] != c {
		return p.fail(fmt.Sprintf("expected %q", c))
	}
	p.i++
	return nil
}

// null consumes a JSON null if one is next; encoding/json leaves the field
// unchanged for it.
func (p *eventParser) null() bool {
	p.space()
	if len(p.data)-p.i >= 4 && string(p.data[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// object parses {"key": value, ...} into e, or into e.Actor for the actor
// object. An empty object is allowed.
func (p *eventParser) object(e *Event, actor bool) error {
	if err := p.consume('{'); err != nil {
		return err
	}
	p.space()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := p.consume(':'); err != nil {
			return err
		}
		if actor {
			err = p.actorField(&e.Actor, key)
		} else {
			err = p.eventField(e, key)
		}
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.data) {
			return p.fail("unterminated object")
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}'")
		}
	}
}

func (p *eventParser) eventField(e *Event, key []byte) error {
	switch string(key) {
	case "v":
		return p.intInto(&e.Format)
	case "type":
		s := string(e.Type)
		if err := p.strInto(&s); err != nil {
			return err
		}
		e.Type = EventType(s)
		return nil
	case "actor":
		if p.null() {
			return nil
		}
		return p.object(e, true)
	case "roomId":
		return p.strInto(&e.RoomID)
	case "messageId":
		return p.strInto(&e.MessageID)
	case "name":
		return p.strInto(&e.Name)
	case "text":
		return p.strInto(&e.Text)
	case "version":
		return p.intInto(&e.Version)
	case "emoji":
		return p.strInto(&e.Emoji)
	case "userId":
		return p.strInto(&e.UserID)
	case "private":
		return p.boolInto(&e.Private)
	case "prev":
		return p.uintInto(&e.Prev)
	case "at":
		return p.int64Into(&e.At)
	}
	return fmt.Errorf("json: unknown field %q", key)
}

func (p *eventParser) actorField(a *Actor, key []byte) error {
	switch string(key) {
	case "id":
		return p.strInto(&a.ID)
	case "name":
		return p.strInto(&a.Name)
	}
	return fmt.Errorf("json: unknown field %q in actor", key)
}

// key parses an object key without allocating unless it has escapes.
func (p *eventParser) key() ([]byte, error) {
	raw, plain, err := p.token()
	if err != nil {
		return nil, err
	}
	if plain {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("key at offset %d: %w", p.i-len(raw), err)
	}
	return []byte(s), nil
}

// strInto sets *dst to a string value; null leaves it alone.
func (p *eventParser) strInto(dst *string) error {
	if p.null() {
		return nil
	}
	s, err := p.str()
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// str parses a JSON string.
func (p *eventParser) str() (string, error) {
	raw, plain, err := p.token()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("string at offset %d: %w", p.i-len(raw), err)
	}
	return s, nil
}

// token consumes a JSON string token, quotes included. plain reports that
// it has no escapes and is valid UTF-8, so its bytes are its value;
// otherwise encoding/json decodes it.
func (p *eventParser) token() (raw []byte, plain bool, err error) {
	p.space()
	if p.i >= len(p.data) || p.data[p.i] != '"' {
		return nil, false, p.fail("expected a string")
	}
	start := p.i
	plain = true
	for j := start + 1; j < len(p.data); j++ {
		c := p.data[j]
		switch {
		case c == '"':
			p.i = j + 1
			raw = p.data[start:p.i]
			return raw, plain && utf8.Valid(raw), nil
		case c == '\\':
			plain = false
			j++ // the escaped character cannot end the string
		case c < 0x20:
			return nil, false, fmt.Errorf("control character in string at offset %d", j)
		}
	}
	return nil, false, p.fail("unterminated string")
}

// intInto sets *dst to an integer value (no fraction or exponent, as
// encoding/json requires for an int); null leaves it alone.
func (p *eventParser) intInto(dst *int) error {
	return p.number(func(s string) error {
		n, err := strconv.Atoi(s)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// int64Into is intInto for an int64.
func (p *eventParser) int64Into(dst *int64) error {
	return p.number(func(s string) error {
		n, err := strconv.ParseInt(s, 10, 64)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// uintInto is intInto for a uint64: a minus sign is refused, as
// encoding/json refuses it.
func (p *eventParser) uintInto(dst *uint64) error {
	return p.number(func(s string) error {
		n, err := strconv.ParseUint(s, 10, 64)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// number consumes an integer token and hands its text to set; null leaves
// the destination alone.
func (p *eventParser) number(set func(string) error) error {
	if p.null() {
		return nil
	}
	start := p.i
	j := start
	if j < len(p.data) && p.data[j] == '-' {
		j++
	}
	digits := j
	for j < len(p.data) && p.data[j] >= '0' && p.data[j] <= '9' {
		j++
	}
	switch {
	case j == digits:
		return p.fail("expected a number")
	case p.data[digits] == '0' && j-digits > 1:
		return p.fail("number with a leading zero")
	case j < len(p.data) && (p.data[j] == '.' || p.data[j] == 'e' || p.data[j] == 'E'):
		return p.fail("expected an integer")
	}
	if err := set(string(p.data[start:j])); err != nil {
		return fmt.Errorf("number at offset %d: %w", start, err)
	}
	p.i = j
	return nil
}

// boolInto sets *dst to a boolean value; null leaves it alone.
func (p *eventParser) boolInto(dst *bool) error {
	if p.null() {
		return nil
	}
	switch {
	case len(p.data)-p.i >= 4 && string(p.data[p.i:p.i+4]) == "true":
		*dst = true
		p.i += 4
	case len(p.data)-p.i >= 5 && string(p.data[p.i:p.i+5]) == "false":
		*dst = false
		p.i += 5
	default:
		return p.fail("expected a boolean")
	}
	return nil
}
