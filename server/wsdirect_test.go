package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAppendFrameHeader(t *testing.T) {
	tests := []struct {
		opcode byte
		n      int
		want   []byte
	}{
		{opText, 0, []byte{0x81, 0}},
		{opText, 125, []byte{0x81, 125}},
		{opText, 126, []byte{0x81, 126, 0, 126}},
		{opText, 0xffff, []byte{0x81, 126, 0xff, 0xff}},
		{opText, 0x10000, []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
		{opText, 0x12345678, []byte{0x81, 127, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78}},
		{opClose, 2, []byte{0x88, 2}},
		{opPing, 0, []byte{0x89, 0}},
		{opPong, 125, []byte{0x8a, 125}},
	}
	for _, tt := range tests {
		if got := appendFrameHeader([]byte("x"), tt.opcode, tt.n); !bytes.Equal(got[1:], tt.want) || got[0] != 'x' {
			t.Errorf("header for opcode %#x and %d bytes = % x, want % x after the prefix", tt.opcode, tt.n, got, tt.want)
		}
	}
}

// TestAppendOpFrameHead: the head and the payload the caller appends make
// one whole frame of the message, with and without a payload.
func TestAppendOpFrameHead(t *testing.T) {
	tests := []struct {
		proto   protocol
		kind    frameKind
		payload string // "" for none
		want    string
	}{
		{transportWS, frameNext, `{"data":{}}`, `{"id":"a\"b","type":"next","payload":{"data":{}}}`},
		{legacyWS, frameNext, `{"data":{}}`, `{"id":"a\"b","type":"data","payload":{"data":{}}}`},
		{transportWS, frameError, `[{"message":"no"}]`, `{"id":"a\"b","type":"error","payload":[{"message":"no"}]}`},
		{legacyWS, frameComplete, "", `{"id":"a\"b","type":"complete"}`},
	}
	for _, tt := range tests {
		n := -1
		if tt.payload != "" {
			n = len(tt.payload)
		}
		frame := appendOpFrameHead(nil, tt.proto, tt.kind, `"a\"b"`, n)
		if n >= 0 {
			frame = append(append(frame, tt.payload...), '}')
		}
		want := append(appendFrameHeader(nil, opText, len(tt.want)), tt.want...)
		if !bytes.Equal(frame, want) {
			t.Errorf("%v %v: frame %q, want %q", tt.proto, tt.kind, frame, want)
		}
	}
}

// TestDirectWriterNeverWaits fills a socket whose peer does not read: the
// writer takes what fits, then reports 0 without blocking; everything it
// reported written arrives, in order; a passed deadline and a closed socket
// are reported as "nothing written" and as an error.
func TestDirectWriterNeverWaits(t *testing.T) {
	server, client := tcpPair(t)
	defer client.Close()
	setBuf := func(c any, opt int) {
		raw, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 4096) })
	}
	setBuf(server, syscall.SO_SNDBUF)
	setBuf(client, syscall.SO_RCVBUF)
	d := directWriterFor(server)
	if d == nil {
		t.Fatal("no direct writer for a TCP connection")
	}

	var sent bytes.Buffer
	partial := false
	for i := 0; ; i++ {
		if i == 10000 {
			t.Fatal("the socket never filled up")
		}
		chunk := []byte(strings.Repeat(fmt.Sprintf("%07d|", i), 1000))
		n, err := d.write(chunk)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		sent.Write(chunk[:n])
		partial = partial || (n > 0 && n < len(chunk))
		if n == 0 {
			break
		}
	}
	t.Logf("%d bytes taken before the socket was full (a partial write: %v)", sent.Len(), partial)

	got := make([]byte, sent.Len())
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatalf("reading what was written: %v", err)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Fatal("the peer received other bytes than the writer reported written")
	}

	_ = server.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := d.write([]byte("late")); n != 0 || !errors.Is(err, errPastDeadline) {
		t.Fatalf("write past the deadline = %d, %v; want 0, errPastDeadline", n, err)
	}
	_ = server.SetWriteDeadline(time.Time{})
	_ = server.Close()
	if _, err := d.write([]byte("closed")); err == nil {
		t.Fatal("write on a closed socket reported no error")
	}
}

// TestClaimQueuesTheRestFirst: frames queued while writeNow held the
// socket go out after the rest of its partly written frame.
func TestClaimQueuesTheRestFirst(t *testing.T) {
	spawned := 0
	q := newOutQueue(10, 1<<20, func() { spawned++ })
	if !q.claim() {
		t.Fatal("claim on an idle queue failed")
	}
	if q.claim() {
		t.Fatal("a second claim succeeded while the first holds the socket")
	}
	if !q.push(outItem{kind: frameRaw, raw: "later"}) {
		t.Fatal("push refused")
	}
	if spawned != 0 {
		t.Fatal("a writer started while the socket was claimed")
	}
	q.release([]byte("rest"))
	if spawned != 1 {
		t.Fatalf("writers started after release = %d, want 1", spawned)
	}
	batch, more := q.take()
	if !more || len(batch) != 2 || batch[0].kind != frameWire || batch[0].raw != "rest" || batch[1].raw != "later" {
		t.Fatalf("queue after release = %+v, want the rest, then the pushed frame", batch)
	}
	if _, more := q.take(); more {
		t.Fatal("the writer was not told to exit on an empty queue")
	}

	// An uneventful claim leaves the queue idle: the next push starts a writer.
	if !q.claim() {
		t.Fatal("claim failed")
	}
	q.release(nil)
	q.push(outItem{kind: frameRaw, raw: "x"})
	if spawned != 2 {
		t.Fatalf("writers started = %d, want 2", spawned)
	}
}

// TestStalledSocketGetsEveryFrameWhole: a subscriber that does not read
// for a while fills its socket, so frames written by the delivering
// goroutine are cut short (each is ~150 KB) or refused, and continue
// through the queue. Once it reads, every event arrives whole and in
// order; so does every event to a subscriber on the other protocol.
func TestStalledSocketGetsEveryFrameWhole(t *testing.T) {
	// The stall lasts as long as posting the events and reading the other
	// subscriber's, which a loaded machine stretches past the default
	// WriteTimeout (10 s): the server would then rightly drop the socket
	// (1006 here), which is not what this test is about.
	r := newReplica(t, func(o *Options) {
		o.QueueBytes = 64 << 20
		o.WriteTimeout = time.Minute
	})
	room := r.room("general")
	text := strings.Repeat("y", 3000)
	for i := range 50 {
		r.post(room, "poster", fmt.Sprintf("old %02d %s", i, text))
	}
	q := `subscription($r: ID!) { messagePosted(roomId: $r) { text room { messages(last: 50) { edges { node { text } } } } } }`
	stalled := r.dialTinyWindow("stalled")
	stalled.subscribe("subscribe", "s", q, map[string]any{"r": room})
	legacy := r.dialLegacy("legacy")
	legacy.subscribe("start", "s", q, map[string]any{"r": room})
	waitFor(t, "subscriptions", func() bool { return r.members() == 2 })

	const events = 40 // ~6 MB: more than a socket buffers (at most 4 MB here)
	for i := range events {
		r.post(room, "poster", fmt.Sprintf("%05d %s", i, text))
	}
	for name, c := range map[string]*wsClient{"stalled": stalled, "legacy": legacy} {
		for i := range events {
			f, err := c.read(10 * time.Second)
			if err != nil {
				t.Fatalf("%s: event %d: %v", name, i, err)
			}
			var got struct {
				MessagePosted struct {
					Text string
					Room struct {
						Messages struct {
							Edges []struct{ Node struct{ Text string } }
						}
					}
				}
			}
			f.data(t, &got)
			want := fmt.Sprintf("%05d %s", i, text)
			edges := got.MessagePosted.Room.Messages.Edges
			if got.MessagePosted.Text != want || len(edges) != 50 {
				t.Fatalf("%s: event %d is %.12q... with %d messages, want %.12q... with 50",
					name, i, got.MessagePosted.Text, len(edges), want)
			}
		}
	}
}

// TestTakeLastLeavesNoRoomForAnotherWriter: the writer sending the close
// frame takes the last frames with takeLast; from then on no push starts
// a writer and no direct write can claim the socket, so nothing can land
// beside or after the close frame. (With take, an emptied queue counted no
// writer, and a push during the close started a second one: the cluster
// test's drain panicked closing closeSent twice.)
func TestTakeLastLeavesNoRoomForAnotherWriter(t *testing.T) {
	spawned := 0
	q := newOutQueue(10, 1<<20, func() { spawned++ })
	if !q.push(outItem{kind: frameRaw, raw: "before the close"}) || spawned != 1 {
		t.Fatalf("push: %d writers started, want 1", spawned)
	}
	batch := q.takeLast()
	if len(batch) != 1 || batch[0].raw != "before the close" {
		t.Fatalf("takeLast = %+v, want the queued frame", batch)
	}
	q.push(outItem{kind: frameRaw, raw: "after the close"})
	q.wake()
	if spawned != 1 {
		t.Fatalf("%d writers started after takeLast, want none beyond the first", spawned-1)
	}
	if q.claim() {
		t.Fatal("a direct write claimed the socket after takeLast")
	}
	if batch, more := q.take(); more || len(batch) != 0 {
		t.Fatalf("take after takeLast = %+v, %v; want nothing, and the writer told to exit", batch, more)
	}
}
