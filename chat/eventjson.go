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
	return parseEvent(data, nil)
}

// parseEvent is parseEventJSON reusing the strings of known where it can:
// the event it returns is equal to parseEventJSON's, and so is its error.
func parseEvent(data []byte, known *eventStrings) (Event, error) {
	p := eventParser{data: data, known: known}
	return p.event()
}

// parseLegacyEvent is parseEventJSON for an event of the legacy layout
// (format 1). The replicas that wrote it refused the fields that came
// later as unknown (prev and at, with the partitioned layout; userId and
// private, with private rooms), so it does too: a migration then copies
// what they accepted and nothing else. Copied, a room.created marked
// private, say, would be keyed by its name (migration.copyRoom), which
// every directory refuses for a private room: the name would be taken for
// good, by no room.
func parseLegacyEvent(data []byte) (Event, error) {
	p := eventParser{data: data, legacy: true}
	return p.event()
}

// event parses the whole of p.data as one event object.
func (p *eventParser) event() (Event, error) {
	var e Event
	if err := p.object(&e, false); err != nil {
		return Event{}, err
	}
	p.space()
	if p.i != len(p.data) {
		return Event{}, p.fail("data after the event object")
	}
	return e, nil
}

// eventStrings are strings a decoder may hand out again instead of
// allocating equal ones: loading a room decodes thousands of its events,
// whose room ID is the room's own and whose actors are mostly the same few.
// The strings are shared by every event decoded with them, and by whatever
// keeps those events (a room's messages keep their authors), which also
// saves the memory of a copy per message. A nil *eventStrings reuses
// nothing.
type eventStrings struct {
	// room is the ID of the room whose events are decoded (its canonical
	// copy, which the room keeps anyway); "" if none.
	room string
	// names are actor IDs and names decoded so far, at most maxKnownNames
	// of at most maxKnownNameBytes each; nil keeps none (a decoder of a
	// single event has no use for them).
	names map[string]string
}

// maxKnownNames bounds eventStrings.names: a room with more actors than
// that decodes the others as if there were no table.
const maxKnownNames = 256

// maxKnownNameBytes bounds the length of a name eventStrings keeps: what
// an identity's ID may take (MaxUserIDLength characters; display names are
// shorter). Longer ones are decoded as if there were no table, which is
// thus at most 256 KiB: the log is shared, and a writer that bypasses the
// proposers could otherwise make one load keep maxKnownNames entries'
// worth of names alive, each as large as an entry may be (1 MiB by
// default), that nothing else holds (those of events the room refuses).
const maxKnownNameBytes = maxUserIDBytes

// newEventStrings returns an eventStrings for decoding many of room's
// events.
func newEventStrings(room string) *eventStrings {
	return &eventStrings{room: room, names: make(map[string]string)}
}

// name returns raw as a string, reusing an earlier equal one.
func (k *eventStrings) name(raw []byte) string {
	if k == nil || len(raw) > maxKnownNameBytes {
		return string(raw)
	}
	if s, ok := k.names[string(raw)]; ok {
		return s
	}
	s := string(raw)
	if k.names != nil && len(k.names) < maxKnownNames {
		k.names[s] = s
	}
	return s
}

type eventParser struct {
	data   []byte
	i      int
	known  *eventStrings // may be nil
	legacy bool          // refuse the fields format 1 did not have
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
	if p.legacy && laterThanLegacy(key) {
		return fmt.Errorf("json: unknown field %q", key)
	}
	switch string(key) {
	case "v":
		return p.intInto(&e.Format)
	case "type":
		return p.typeInto(&e.Type)
	case "actor":
		if p.null() {
			return nil
		}
		return p.object(e, true)
	case "roomId":
		return p.roomInto(&e.RoomID)
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

// laterThanLegacy reports whether key names a field that came after the
// legacy layout's format.
func laterThanLegacy(key []byte) bool {
	switch string(key) {
	case "prev", "at", "userId", "private":
		return true
	}
	return false
}

func (p *eventParser) actorField(a *Actor, key []byte) error {
	switch string(key) {
	case "id":
		return p.nameInto(&a.ID)
	case "name":
		return p.nameInto(&a.Name)
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

// typeInto is strInto for the event's type: a known type is the
// constant, not a copy.
func (p *eventParser) typeInto(dst *EventType) error {
	s := string(*dst)
	err := p.reusedInto(&s, func(raw []byte) (string, bool) {
		t, ok := knownEventType(raw)
		return string(t), ok
	})
	*dst = EventType(s)
	return err
}

// reusedInto is strInto that, for a string without escapes, takes the
// string reuse returns for its bytes, if any, rather than a copy.
func (p *eventParser) reusedInto(dst *string, reuse func(raw []byte) (string, bool)) error {
	if p.null() {
		return nil
	}
	raw, plain, err := p.token()
	if err != nil {
		return err
	}
	if plain {
		if s, ok := reuse(raw[1 : len(raw)-1]); ok {
			*dst = s
			return nil
		}
	}
	s, err := p.tokenString(raw, plain)
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// knownEventType returns the constant that raw spells, if any.
func knownEventType(raw []byte) (EventType, bool) {
	switch string(raw) {
	case string(RoomCreated):
		return RoomCreated, true
	case string(MessagePosted):
		return MessagePosted, true
	case string(MessageEdited):
		return MessageEdited, true
	case string(MessageDeleted):
		return MessageDeleted, true
	case string(ReactionToggled):
		return ReactionToggled, true
	case string(MemberAdded):
		return MemberAdded, true
	case string(MemberRemoved):
		return MemberRemoved, true
	}
	return "", false
}

// roomInto is strInto for the event's room ID: the known room's ID, if
// that is the one, is not copied.
func (p *eventParser) roomInto(dst *string) error {
	return p.reusedInto(dst, func(raw []byte) (string, bool) {
		if k := p.known; k != nil && k.room != "" && string(raw) == k.room {
			return k.room, true
		}
		return "", false
	})
}

// nameInto is strInto for an actor's ID or name, which the known names
// may already hold.
func (p *eventParser) nameInto(dst *string) error {
	return p.reusedInto(dst, func(raw []byte) (string, bool) { return p.known.name(raw), true })
}

// str parses a JSON string.
func (p *eventParser) str() (string, error) {
	raw, plain, err := p.token()
	if err != nil {
		return "", err
	}
	return p.tokenString(raw, plain)
}

// tokenString is the value of the string token raw that was just consumed.
func (p *eventParser) tokenString(raw []byte, plain bool) (string, error) {
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
	escaped, ascii := false, true
	for j := start + 1; j < len(p.data); j++ {
		c := p.data[j]
		if c >= 0x20 && c < 0x80 && c != '"' && c != '\\' {
			continue // the common case: a byte that is its own value
		}
		switch {
		case c == '"':
			p.i = j + 1
			raw = p.data[start:p.i]
			return raw, !escaped && (ascii || utf8.Valid(raw)), nil
		case c == '\\':
			escaped = true
			j++ // the escaped character cannot end the string
		case c < 0x20:
			return nil, false, fmt.Errorf("control character in string at offset %d", j)
		default: // a byte of a multi-byte character
			ascii = false
		}
	}
	return nil, false, p.fail("unterminated string")
}

// intInto sets *dst to an integer value (no fraction or exponent, as
// encoding/json requires for an int); null leaves it alone.
func (p *eventParser) intInto(dst *int) error {
	return p.number(func(tok []byte) error {
		if n, ok := smallInt(tok); ok && int64(int(n)) == n { // int may have 32 bits
			*dst = int(n)
			return nil
		}
		n, err := strconv.Atoi(string(tok))
		if err == nil {
			*dst = n
		}
		return err
	})
}

// int64Into is intInto for an int64.
func (p *eventParser) int64Into(dst *int64) error {
	return p.number(func(tok []byte) error {
		if n, ok := smallInt(tok); ok {
			*dst = n
			return nil
		}
		n, err := strconv.ParseInt(string(tok), 10, 64)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// uintInto is intInto for a uint64: a minus sign is refused, as
// encoding/json refuses it.
func (p *eventParser) uintInto(dst *uint64) error {
	return p.number(func(tok []byte) error {
		if n, ok := smallInt(tok); ok && tok[0] != '-' {
			*dst = uint64(n)
			return nil
		}
		n, err := strconv.ParseUint(string(tok), 10, 64)
		if err == nil {
			*dst = n
		}
		return err
	})
}

// smallInt is the value of an integer token (an optional minus sign, then
// digits) of at most 18 digits, which no int, int64 or uint64 overflows;
// ok is false for a longer one, which strconv parses instead.
func smallInt(tok []byte) (n int64, ok bool) {
	digits := tok
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	for _, c := range digits {
		n = 10*n + int64(c-'0')
	}
	if len(digits) < len(tok) {
		n = -n
	}
	return n, true
}

// number consumes an integer token and hands its text to set; null leaves
// the destination alone.
func (p *eventParser) number(set func([]byte) error) error {
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
	if err := set(p.data[start:j]); err != nil {
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
