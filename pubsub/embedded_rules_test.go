package pubsub

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// TestCheckFreeSpace: the embedded server refuses a data dir whose disk has
// less than minFreeBytes free (ErrDataDirFull, saying how much is free and
// how much is needed), and takes one with room. /proc reports no space
// available at all.
func TestCheckFreeSpace(t *testing.T) {
	if _, ok := diskFree("/proc"); !ok {
		t.Skip("statfs /proc not available here")
	}
	err := checkFreeSpace("/proc")
	if !errors.Is(err, ErrDataDirFull) {
		t.Fatalf("checkFreeSpace on a file system with 0 bytes free = %v; want ErrDataDirFull", err)
	}
	if !strings.Contains(err.Error(), "0 B free on its disk, below the 1.0 MiB") {
		t.Errorf("checkFreeSpace error %q does not say how much is free and needed", err)
	}
	dir := t.TempDir()
	if free, ok := diskFree(dir); !ok || free < 2*minFreeBytes {
		t.Skipf("temp dir has only %d bytes free", free)
	}
	if err := checkFreeSpace(dir); err != nil {
		t.Errorf("checkFreeSpace on a disk with room = %v; want nil", err)
	}
}

// TestFmtBytes: sizes in messages use the largest unit in which they are
// at least 1.
func TestFmtBytes(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{1<<20 - 1, "1024.0 KiB"}, {1 << 20, "1.0 MiB"}, {5 << 30, "5.0 GiB"}, {3 << 40, "3.0 TiB"},
		{2 << 50, "2.0 PiB"}, {4096 << 50, "4096.0 PiB"},
	} {
		if got := fmtBytes(tt.n); got != tt.want {
			t.Errorf("fmtBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestEmbeddedStoreUnbounded: without MaxStore the embedded server's store
// limit is set to the maximum, not left to nats-server, which would fix it
// at 75% of the space free at start and never raise it; MaxStore, when
// set, is the limit.
func TestEmbeddedStoreUnbounded(t *testing.T) {
	l := openEmbedded(t, Options{})
	if got := l.emb.current().JetStreamConfig().MaxStore; got != math.MaxInt64 {
		t.Errorf("embedded JetStream max store = %d without MaxStore; want math.MaxInt64", got)
	}
	bounded := openEmbedded(t, Options{MaxStore: 64 << 20})
	if got := bounded.emb.current().JetStreamConfig().MaxStore; got != 64<<20 {
		t.Errorf("embedded JetStream max store = %d with MaxStore 64 MiB", got)
	}
}

// TestEmbeddedListeners: without ListenAddr the embedded server opens no
// socket; with port 0 each server gets a free port of its own (nats-server
// alone would take 4222), so two start side by side.
func TestEmbeddedListeners(t *testing.T) {
	none := openEmbedded(t, Options{})
	if addr := none.emb.current().Addr(); addr != nil {
		t.Errorf("embedded server without ListenAddr listens on %v; want no socket", addr)
	}
	if none.ListenAddr() != nil || none.ClientURL() != "" {
		t.Errorf("ListenAddr %v, ClientURL %q without ListenAddr; want nil, empty", none.ListenAddr(), none.ClientURL())
	}
	a := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
	b := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
	for _, l := range []*Log{a, b} {
		if strings.HasSuffix(l.ClientURL(), ":4222") {
			t.Errorf("ListenAddr 127.0.0.1:0 got ClientURL %s: nats-server's default port, not a free one", l.ClientURL())
		}
	}
	if a.ClientURL() == b.ClientURL() {
		t.Errorf("two servers on port 0 share %s", a.ClientURL())
	}
}

// TestListenAddrRefused: a malformed ListenAddr (a port out of range or not
// a number, no port) is refused by Open, naming it.
func TestListenAddrRefused(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1"} {
		l, err := Open(testCtx(t, 10*time.Second), Options{DataDir: t.TempDir(), ListenAddr: addr, Logger: testLogger(), ConnectTimeout: 5 * time.Second})
		if err == nil {
			_ = l.Close()
			t.Errorf("Open with ListenAddr %q succeeded", addr)
			continue
		}
		if !strings.Contains(err.Error(), "ListenAddr \""+addr+"\"") {
			t.Errorf("Open with ListenAddr %q: %v; want it to name the address", addr, err)
		}
	}
}

// TestListenInUseFailsAtOnce: a listen address already taken is reported as
// soon as nats-server says so, not once ConnectTimeout is up.
func TestListenInUseFailsAtOnce(t *testing.T) {
	const connectTimeout = 30 * time.Second
	taken := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
	start := time.Now()
	l, err := Open(t.Context(), Options{DataDir: t.TempDir(), ListenAddr: strings.TrimPrefix(taken.ClientURL(), "nats://"),
		Logger: testLogger(), ConnectTimeout: connectTimeout})
	if err == nil {
		_ = l.Close()
		t.Fatal("Open on a listen address in use succeeded")
	}
	if d := time.Since(start); d > connectTimeout/3 {
		t.Errorf("Open on a listen address in use failed after %s (ConnectTimeout %s); want at once: %v", d.Round(time.Millisecond), connectTimeout, err)
	}
}

// TestServerLoggerFirstFatalAndProxiedIPv6: start-up reports the first
// fatal line nats-server logged (the cause, not what followed), and a line
// about a WebSocket client with an IPv6 address behind a proxy
// ("<client IP>/<host:port>") is that client's line.
func TestServerLoggerFirstFatalAndProxiedIPv6(t *testing.T) {
	sl := &serverLogger{log: testLogger()}
	sl.Fatalf("listen: %s", "address already in use")
	sl.Fatalf("a later fatal line")
	if got := sl.fatal(); got != "listen: address already in use" {
		t.Errorf("fatal() = %q; want the first fatal line", got)
	}
	for _, msg := range []string{
		"2001:db8::1/10.0.0.1:443 - wid:3 - Authorization Violation",
		"2001:db8::1/[2001:db8::2]:443 - wid:3 - Authorization Violation",
	} {
		if !clientScoped(msg) {
			t.Errorf("clientScoped(%q) = false; want a proxied WebSocket client's line", msg)
		}
	}
}
