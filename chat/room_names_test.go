package chat

import (
	"context"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/heraldhq/herald/pubsub"
)

// Public room names are unique ignoring case (README, schema.graphqls).
// The key was the name in lower case, which leaves the final sigma ς and
// the long s ſ apart from σ and s: "ΟΔΟΣ" and "οδος", "Straſſe" and
// "STRASSE" were two rooms each, created one after the other or by two
// replicas racing.
func TestRoomNamesUniqueUnderCaseFolding(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx := context.Background()
	for _, pair := range [][2]string{{"ΟΔΟΣ", "οδος"}, {"Straſſe", "STRASSE"}, {"ϑεμα", "ΘΕΜΑ"}} {
		if !strings.EqualFold(pair[0], pair[1]) {
			t.Fatalf("%q and %q are not one name ignoring case", pair[0], pair[1])
		}
		var wg sync.WaitGroup
		rooms := make([]Room, 2)
		errs := make([]error, 2)
		for r, svc := range []*Service{a, b} {
			wg.Go(func() { rooms[r], errs[r] = svc.CreateRoom(ctx, alice, pair[r]) })
		}
		wg.Wait()
		if errs[0] == nil && errs[1] == nil {
			t.Errorf("two public rooms of one name ignoring case: %q (%s) and %q (%s)",
				rooms[0].Name, rooms[0].ID, rooms[1].Name, rooms[1].ID)
		}
	}
	// One after the other, on one replica.
	if _, err := a.CreateRoom(ctx, alice, "ſun"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateRoom(ctx, alice, "SUN"); err == nil {
		t.Error(`"SUN" was created beside "ſun"`)
	}
}

// Every rune keys as every rune it folds with, and as its lower case
// otherwise (the keys rooms were stored under before), so that names
// created before keep their keys.
func TestRoomNameKeyFoldsAsEqualFold(t *testing.T) {
	changed := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		k := foldRune(r)
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if foldRune(f) != k {
				t.Fatalf("%U keys as %U, %U (which it folds with) as %U", r, k, f, foldRune(f))
			}
		}
		if k != unicode.ToLower(r) {
			changed++
		}
	}
	if changed > 22 {
		t.Errorf("%d runes key otherwise than their lower case; 22 must (the second lower-case forms)", changed)
	}
}
