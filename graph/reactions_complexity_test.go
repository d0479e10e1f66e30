package graph

import (
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestReactionsComplexity: a message's reactions are counted as the most
// groups a message may hold, as a page is counted per item it may hold, so
// that --max-complexity bounds the groups an operation may return.
func TestReactionsComplexity(t *testing.T) {
	reactions := complexity().Message.Reactions
	if reactions == nil {
		t.Fatal("Message.reactions has no complexity of its own: it counts once whatever it holds")
	}
	for _, children := range []int{0, 1, 2, 3} {
		if got, want := reactions(children), 1+children*chat.MaxReactionGroups; got != want {
			t.Errorf("complexity of reactions with children of %d: %d, want %d", children, got, want)
		}
	}
}
