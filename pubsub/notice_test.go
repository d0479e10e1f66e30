package pubsub

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNotices: a notice published on one replica reaches every listener of
// its topic, the publisher's own included, and no listener of another
// topic; a closed listener gets nothing more; bad topics and oversized
// notices are refused.
func TestNotices(t *testing.T) {
	url := startNATS(t, true)
	a, b := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	listen := func(l *Log, topic string) (<-chan string, *NoticeListener) {
		got := make(chan string, 8)
		nl, err := l.ListenNotices(topic, func(data []byte) { got <- string(data) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nl.Close() })
		return got, nl
	}
	gotA, nlA := listen(a, "disconnect")
	gotB, _ := listen(b, "disconnect")
	gotOther, _ := listen(b, "other")

	if err := a.PublishNotice(testCtx(t, 5*time.Second), "disconnect", []byte("alice")); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]<-chan string{"publisher": gotA, "other replica": gotB} {
		select {
		case s := <-got:
			if s != "alice" {
				t.Errorf("%s got %q, want alice", name, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no notice", name)
		}
	}
	if err := nlA.Close(); err != nil {
		t.Fatal(err)
	}
	_ = nlA.Close() // idempotent
	// A fence: once b's listener has the second notice, a closed listener
	// that were still subscribed would have had it too.
	if err := b.PublishNotice(testCtx(t, 5*time.Second), "disconnect", []byte("bob")); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-gotB:
		if s != "bob" {
			t.Fatalf("got %q, want bob", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no second notice")
	}
	select {
	case s := <-gotA:
		t.Errorf("a closed listener got %q", s)
	default:
	}
	select {
	case s := <-gotOther:
		t.Errorf("a listener of another topic got %q", s)
	default:
	}

	for _, bad := range []string{"", "a.b", "a*", ">", "a b"} {
		if _, err := a.ListenNotices(bad, func([]byte) {}); err == nil {
			t.Errorf("ListenNotices(%q) accepted a topic that is no subject token", bad)
		}
		if err := a.PublishNotice(context.Background(), bad, nil); err == nil {
			t.Errorf("PublishNotice(%q) accepted a topic that is no subject token", bad)
		}
	}
	if err := a.PublishNotice(testCtx(t, time.Second), "disconnect", []byte(strings.Repeat("x", maxNoticeBytes+1))); err == nil {
		t.Error("an oversized notice was accepted")
	}
}
