package graph

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/chat"
)

// A cursor is a position in the event log: the log's epoch and a sequence,
// encoded opaquely. Clients must treat it as an opaque string.
const cursorPrefix = "h1:"

func (r *Resolver) encodeCursor(seq uint64) string {
	raw := cursorPrefix + strconv.FormatInt(r.epoch, 36) + ":" + strconv.FormatUint(seq, 36)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor returns the sequence a cursor names; nil means no cursor.
func (r *Resolver) decodeCursor(arg string, cursor *string) (uint64, error) {
	if cursor == nil {
		return 0, nil
	}
	seq, epoch, err := parseCursor(*cursor)
	if err != nil {
		return 0, &chat.Error{Code: chat.CodeBadUserInput, Message: fmt.Sprintf("%s: invalid cursor: %v", arg, err)}
	}
	if epoch != r.epoch {
		return 0, &chat.Error{Code: chat.CodeCursorExpired,
			Message: fmt.Sprintf("%s: the cursor belongs to another incarnation of the event log; refetch from the start", arg)}
	}
	return seq, nil
}

func parseCursor(s string) (seq uint64, epoch int64, err error) {
	if len(s) > 64 {
		return 0, 0, fmt.Errorf("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, 0, fmt.Errorf("not base64url")
	}
	rest, ok := strings.CutPrefix(string(raw), cursorPrefix)
	if !ok {
		return 0, 0, fmt.Errorf("unknown format")
	}
	epochPart, seqPart, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, 0, fmt.Errorf("unknown format")
	}
	if epoch, err = strconv.ParseInt(epochPart, 36, 64); err != nil {
		return 0, 0, fmt.Errorf("bad epoch")
	}
	if seq, err = strconv.ParseUint(seqPart, 36, 64); err != nil || seq == 0 {
		return 0, 0, fmt.Errorf("bad position")
	}
	return seq, epoch, nil
}
