package pubsub

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestLegacy(t *testing.T) {
	url := startNATS(t, true)
	js := rawJS(t, url)
	createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, MaxMsgsPerSubject: 100})
	legacy := []struct{ subject, data string }{
		{"herald.room.r1.meta", "meta"},
		{"herald.room.r1.posts", "post"},
		{"herald.room.r1.msg.abc", "msg"},
	}
	for _, m := range legacy {
		if _, err := js.Publish(testCtx(t, 5*time.Second), m.subject, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
	}

	l := openLog(t, Options{URLs: []string{url}, Partitions: 2})
	if !l.HasLegacy() {
		t.Fatal("HasLegacy() = false with a HERALD stream present")
	}

	// ReadLegacy reads up to the last sequence when it started, even when
	// more arrives meanwhile.
	var got []Entry
	err := l.ReadLegacy(testCtx(t, 5*time.Second), func(e Entry) error {
		if len(got) == 0 {
			if _, err := js.Publish(testCtx(t, 5*time.Second), "herald.room.r2.meta", []byte("late")); err != nil {
				return err
			}
		}
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadLegacy: %v", err)
	}
	if len(got) != len(legacy) {
		t.Fatalf("ReadLegacy delivered %d entries, want %d: %+v", len(got), len(legacy), got)
	}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Subject != legacy[i].subject || string(e.Data) != legacy[i].data ||
			e.Partition != -1 || e.Key != "" || e.Rest != "" || time.Since(e.Time) > time.Minute {
			t.Errorf("legacy entry %d = %+v, want seq %d %s %q", i, e, i+1, legacy[i].subject, legacy[i].data)
		}
	}
	info, err := js.Stream(testCtx(t, 5*time.Second), "HERALD")
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo().State.Consumers; c != 0 {
		t.Errorf("legacy stream has %d consumers after ReadLegacy, want 0", c)
	}
	var all []string
	if err := l.ReadLegacy(testCtx(t, 5*time.Second), func(e Entry) error {
		all = append(all, string(e.Data))
		return nil
	}); err != nil || !slices.Equal(all, []string{"meta", "post", "msg", "late"}) {
		t.Errorf("second ReadLegacy = %v, %v; want [meta post msg late]", all, err)
	}

	// Migration helpers on the new layout.
	empty, err := l.LayoutEmpty(testCtx(t, 5*time.Second))
	if err != nil || !empty {
		t.Errorf("LayoutEmpty of a new layout = %v, %v; want true", empty, err)
	}
	mustAdd(t, l, "r1", "dir")
	mustAppendKeyed(t, l, "r1", "posts", "p", AppendOptions{})
	mustAppendKeyed(t, l, "general", "posts", "p", AppendOptions{})
	if empty, err := l.LayoutEmpty(testCtx(t, 5*time.Second)); err != nil || empty {
		t.Errorf("LayoutEmpty with entries = %v, %v; want false", empty, err)
	}
	if err := l.ResetLayout(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("ResetLayout: %v", err)
	}
	if empty, err := l.LayoutEmpty(testCtx(t, 5*time.Second)); err != nil || !empty {
		t.Errorf("LayoutEmpty after ResetLayout = %v, %v; want true", empty, err)
	}
	// After a reset keys start over (sequences do not).
	mustAdd(t, l, "r1", "dir again")
	if res := mustAppendKeyed(t, l, "r1", "posts", "p", AppendOptions{}); res.Seq <= 1 {
		t.Errorf("append after reset = %+v, want the partition's sequence to go on", res)
	}

	// Drop it.
	if err := l.DropLegacy(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("DropLegacy: %v", err)
	}
	if l.HasLegacy() {
		t.Error("HasLegacy() after DropLegacy = true")
	}
	if _, err := js.Stream(testCtx(t, 5*time.Second), "HERALD"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("legacy stream after DropLegacy: %v, want not found", err)
	}
	if err := l.DropLegacy(testCtx(t, 5*time.Second)); err != nil {
		t.Errorf("second DropLegacy = %v, want nil", err)
	}
	if err := l.ReadLegacy(testCtx(t, 5*time.Second), func(Entry) error { return nil }); err == nil || !strings.Contains(err.Error(), `read legacy stream "HERALD": there is none`) {
		t.Errorf("ReadLegacy after DropLegacy = %v", err)
	}
	if reopened := openLog(t, Options{URLs: []string{url}, Partitions: 2}); reopened.HasLegacy() {
		t.Error("HasLegacy() after reopening without the legacy stream = true")
	}
}

func TestNoLegacy(t *testing.T) {
	l := openEmbedded(t, Options{})
	if l.HasLegacy() {
		t.Error("HasLegacy() = true on a fresh log")
	}
	if err := l.ReadLegacy(testCtx(t, 5*time.Second), func(Entry) error { return nil }); err == nil {
		t.Error("ReadLegacy without a legacy stream = nil")
	}
	if err := l.DropLegacy(testCtx(t, 5*time.Second)); err != nil {
		t.Errorf("DropLegacy without a legacy stream = %v", err)
	}
}
