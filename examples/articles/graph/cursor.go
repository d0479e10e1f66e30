package graph

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/examples/articles/library"
)

// A cursor is base64url of "a1:<epoch>:<position>", both base 36: the
// incarnation of the event log and a position in it. Clients treat it as
// opaque.
const cursorPrefix = "a1:"

func (r *Resolver) encodeCursor(seq uint64) string {
	raw := cursorPrefix + strconv.FormatInt(r.epoch, 36) + ":" + strconv.FormatUint(seq, 36)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor returns the position a cursor names; nil for no cursor.
func (r *Resolver) decodeCursor(cursor *string) (*uint64, error) {
	if cursor == nil {
		return nil, nil
	}
	epoch, seq, err := parseCursor(*cursor)
	if err != nil {
		return nil, &library.Error{Code: library.CodeBadUserInput, Message: fmt.Sprintf("after: invalid cursor: %v", err)}
	}
	if epoch != r.epoch {
		return nil, &library.Error{Code: library.CodeCursorExpired,
			Message: "after: the cursor belongs to another incarnation of the event log; refetch, then subscribe without it"}
	}
	return &seq, nil
}

func parseCursor(s string) (epoch int64, seq uint64, err error) {
	if len(s) > 64 {
		return 0, 0, fmt.Errorf("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, 0, fmt.Errorf("not base64url")
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	epochPart, seqPart, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 {
		return 0, 0, fmt.Errorf("unknown format")
	}
	if epoch, err = strconv.ParseInt(epochPart, 36, 64); err != nil {
		return 0, 0, fmt.Errorf("bad epoch")
	}
	if seq, err = strconv.ParseUint(seqPart, 36, 64); err != nil || seq == 0 {
		return 0, 0, fmt.Errorf("bad position")
	}
	return epoch, seq, nil
}
