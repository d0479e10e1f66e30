package pubsub

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAddToDirectory(t *testing.T) {
	l := openEmbedded(t, Options{Partitions: 3})
	tests := []struct {
		name     string
		key      string
		wantSeq  uint64
		wantIs   error
		wantText string
	}{
		{name: "first add", key: "lobby", wantSeq: 1},
		{name: "another key", key: "room_2", wantSeq: 2},
		{name: "same key again", key: "lobby", wantIs: ErrKeyExists, wantText: `add key "lobby" to the directory: the key already has an entry (seq 1)`},
		{name: "after the refusal", key: "kitchen", wantSeq: 3},
		{name: "upper case", key: "Lobby", wantText: `invalid key "Lobby"`},
		{name: "dot", key: "a.b", wantText: `invalid key "a.b"`},
		{name: "wildcard", key: "*", wantText: `invalid key "*"`},
		{name: "empty", key: "", wantText: `invalid key ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.AddToDirectory(testCtx(t, 5*time.Second), tt.key, []byte("data of "+tt.key))
			if tt.wantText == "" {
				if err != nil || res.Seq != tt.wantSeq || res.Duplicate {
					t.Fatalf("AddToDirectory = %+v, %v; want seq %d", res, err, tt.wantSeq)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("AddToDirectory = %+v, %v; want error containing %q", res, err, tt.wantText)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if tt.wantIs == nil && errors.Is(err, ErrKeyExists) {
				t.Errorf("validation error %v wraps ErrKeyExists", err)
			}
		})
	}
	if got := mustDirectoryLastSeq(t, l); got != 3 {
		t.Errorf("DirectoryLastSeq = %d, want 3 (refused adds store nothing)", got)
	}
}

// TestAddToDirectoryRace races two adds of each of many keys: exactly one of
// each pair wins, the other gets ErrKeyExists, and the directory holds one
// entry per key, the winner's.
func TestAddToDirectoryRace(t *testing.T) {
	l := openEmbedded(t, Options{})
	const keys = 25
	type result struct {
		res AppendResult
		err error
	}
	results := make([][2]result, keys)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range keys {
		for c := range 2 {
			wg.Go(func() {
				<-start
				res, err := l.AddToDirectory(testCtx(t, 5*time.Second), fmt.Sprint("k", i), []byte(fmt.Sprint(c)))
				results[i][c] = result{res, err}
			})
		}
	}
	close(start)
	wg.Wait()

	winners := map[string]string{} // key -> data of the winner
	for i, pair := range results {
		key := fmt.Sprint("k", i)
		var won, lost int
		for c, r := range pair {
			switch {
			case r.err == nil:
				won++
				winners[key] = fmt.Sprint(c)
			case errors.Is(r.err, ErrKeyExists):
				lost++
			default:
				t.Errorf("key %s caller %d: unexpected error %v", key, c, r.err)
			}
		}
		if won != 1 || lost != 1 {
			t.Errorf("key %s: %d won, %d got ErrKeyExists; want exactly one each", key, won, lost)
		}
	}

	f := startFollow(t, l, 0)
	got := f.next(t, keys, 5*time.Second)
	f.quiet(t, 50*time.Millisecond)
	for _, e := range got {
		if want, ok := winners[e.Key]; !ok || string(e.Data) != want {
			t.Errorf("directory entry %s = %q, want the winner's %q", e.Key, e.Data, want)
		}
		delete(winners, e.Key)
	}
	if len(winners) != 0 {
		t.Errorf("keys missing from the directory: %v", winners)
	}
}

// TestDirectoryLastSeqOfAPurgedDirectory: a purged directory (a migration
// redone, ResetLayout) keeps its last sequence but holds no entry at it:
// DirectoryLastSeq says 0, or a replica waiting to reach it would never be
// ready.
func TestDirectoryLastSeqOfAPurgedDirectory(t *testing.T) {
	l := openEmbedded(t, Options{})
	for _, key := range []string{"a", "b"} {
		if _, err := l.AddToDirectory(testCtx(t, 5*time.Second), key, []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	if got := mustDirectoryLastSeq(t, l); got != 2 {
		t.Fatalf("DirectoryLastSeq = %d, want 2", got)
	}
	if err := l.ResetLayout(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := mustDirectoryLastSeq(t, l); got != 0 {
		t.Errorf("DirectoryLastSeq of a purged directory = %d, want 0: no entry will be read at its last sequence", got)
	}
}
