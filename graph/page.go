package graph

import (
	"fmt"

	"github.com/heraldhq/herald/chat"
)

// MaxPageSize bounds first and last.
const MaxPageSize = 100

// window turns Relay pagination arguments into a chat.Window. empty reports
// that the client asked for zero items.
// With neither first nor last, def supplies the count.
func (r *Resolver) window(first, last *int, after, before *string, def chat.Window) (w chat.Window, empty bool, err error) {
	if first != nil && last != nil {
		return w, false, badInput("pass first or last, not both")
	}
	for name, n := range map[string]*int{"first": first, "last": last} {
		if n != nil && (*n < 0 || *n > MaxPageSize) {
			return w, false, badInput(fmt.Sprintf("%s must be between 0 and %d, got %d", name, MaxPageSize, *n))
		}
	}
	if w.After, err = r.decodeCursor("after", after); err != nil {
		return w, false, err
	}
	if w.Before, err = r.decodeCursor("before", before); err != nil {
		return w, false, err
	}
	switch {
	case first != nil:
		w.First = *first
		empty = *first == 0
	case last != nil:
		w.Last = *last
		empty = *last == 0
	default:
		w.First, w.Last = def.First, def.Last
	}
	return w, empty, nil
}

func badInput(msg string) error { return &chat.Error{Code: chat.CodeBadUserInput, Message: msg} }
