package server

// Every byte to a socket goes through its one writer: data frames, the
// rest of a frame writeNow began, pongs and close frames. These tests
// read the wire with a strict parser of their own (rawWS) while the
// server's send buffers are small, so that every large frame is written
// in parts and anything written around the socket's writer lands inside
// a frame.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// streamQuery selects the room's last 20 messages with every event. With
// bigRoom's messages and postEvents' events, each frame is about 31 KB,
// several times what the server's send buffer and the client's receive
// buffer hold together.
const streamQuery = `subscription($r: ID!) { messagePosted(roomId: $r) { text room { messages(last: 20) { edges { node { text } } } } } }`

const bigText = 1500

// bigRoom creates a room holding 20 messages of bigText characters.
func bigRoom(r *replica, name string) string {
	r.t.Helper()
	room := r.room(name)
	for i := range 20 {
		r.post(room, "poster", fmt.Sprintf("old %02d %s", i, strings.Repeat("o", bigText)))
	}
	return room
}

// postEvents posts up to n messages of bigText characters, numbered from
// 0, until stop is closed, and calls after (unless nil) after each.
func postEvents(r *replica, room string, n int, stop <-chan struct{}, after func() error) error {
	filler := strings.Repeat("e", bigText)
	for i := range n {
		select {
		case <-stop:
			return nil
		default:
		}
		text := fmt.Sprintf("%05d %s", i, filler)
		if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, room, text, ""); err != nil {
			return fmt.Errorf("post %d: %w", i, err)
		}
		if after != nil {
			if err := after(); err != nil {
				return err
			}
		}
	}
	return nil
}

// background runs a test's helper goroutines and stops them: stop is
// closed and every helper waited for, once, when the test ends or calls
// end itself.
type background struct {
	stop chan struct{}
	wg   sync.WaitGroup
	end  func()
}

func newBackground(t *testing.T) *background {
	b := &background{stop: make(chan struct{})}
	b.end = sync.OnceFunc(func() {
		close(b.stop)
		b.wg.Wait()
	})
	t.Cleanup(b.end)
	return b
}

// eventText decodes a next (legacy: data) message for id "s" and returns
// the posted message's text.
func eventText(t *testing.T, p wspProto, m rawMessage) (text string, keepalive bool) {
	t.Helper()
	f := frame{raw: string(m.payload)}
	if err := json.Unmarshal(m.payload, &f); err != nil {
		t.Fatalf("%s: %v", m.payload, err)
	}
	if f.Type == "ka" || f.Type == "ping" {
		return "", true
	}
	if f.Type != p.next || f.ID != "s" {
		t.Fatalf("got %.200s, want a %s message for id s", m.payload, p.next)
	}
	var got struct{ MessagePosted struct{ Text string } }
	f.data(t, &got)
	return got.MessagePosted.Text, false
}

// TestPongsStayBetweenFrames: a client that pings over WebSocket while
// large events stream to it gets every pong, in order, between frames and
// never inside one, and every event whole. Right after each event is
// posted, a burst of pings arrives, so the server's reader is answering
// pings while the event's frame is written in parts.
func TestPongsStayBetweenFrames(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) { pingWhileStreaming(t, r.forTest(t), p) })
	}
}

func pingWhileStreaming(t *testing.T, r *replica, p wspProto) {
	const events, burst = 200, 64
	room := bigRoom(r, "pongs-"+p.name)
	c := r.dialRaw(p.name, 4096)
	c.start(p, streamQuery, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })

	bg := newBackground(t)
	slots := make(chan struct{}, 4*burst) // one per ping awaiting its pong
	sent := 0                             // the poster's until bg.end
	pingBurst := func() error {
		for range burst {
			select {
			case <-bg.stop:
				return nil
			case slots <- struct{}{}:
			}
		}
		if err := c.pings(sent, burst); err != nil {
			return err
		}
		sent += burst
		return nil
	}
	var postErr error
	bg.wg.Go(func() { postErr = postEvents(r, room, events, bg.stop, pingBurst) })

	got, pongs := 0, 0
	read := func() rawMessage {
		t.Helper()
		m, err := c.next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d of %d events and %d pongs: %v", got, events, pongs, err)
		}
		return m
	}
	pong := func(m rawMessage) {
		t.Helper()
		if want := fmt.Sprintf("%s%06d", pingMark, pongs); string(m.payload) != want {
			t.Fatalf("pong %q, want %q", m.payload, want)
		}
		pongs++
		<-slots
	}
	for got < events {
		switch m := read(); m.op {
		case rawPong:
			pong(m)
		case rawText:
			text, keepalive := eventText(t, p, m)
			if keepalive {
				continue
			}
			if want := fmt.Sprintf("%05d ", got); !strings.HasPrefix(text, want) {
				t.Fatalf("event %d is %.10q…", got, text)
			}
			got++
		default:
			t.Fatalf("unexpected frame %#x %q", m.op, m.payload)
		}
	}
	bg.end()
	if postErr != nil {
		t.Fatal(postErr)
	}
	for pongs < sent {
		if m := read(); m.op != rawPong {
			t.Fatalf("got %#x %.200q, want the pong of ping %d of %d", m.op, m.payload, pongs, sent)
		} else {
			pong(m)
		}
	}
	if pongs == 0 {
		t.Fatal("no ping was sent while the events streamed")
	}
	t.Logf("%d events of ~31 KB whole, %d pongs between frames", got, pongs)
	_ = c.conn.Close()
	waitFor(t, "the socket to be released", func() bool { return r.members() == 0 })
}

// TestCloseEchoFollowsWholeFrames: a client that closes while large events
// stream to it gets its close code echoed after whole frames, and then the
// server ends the connection.
func TestCloseEchoFollowsWholeFrames(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := bigRoom(r, "echo-"+p.name)
			for i := range 10 {
				closeWhileStreaming(t, r, p, room, 4000+i)
			}
		})
	}
}

func closeWhileStreaming(t *testing.T, r *replica, p wspProto, room string, code int) {
	t.Helper()
	c := r.dialRaw(p.name, 4096)
	c.start(p, streamQuery, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	bg := newBackground(t)
	var postErr error
	bg.wg.Go(func() { postErr = postEvents(r, room, 1000, bg.stop, nil) })

	// Close once an event has arrived, while more are on their way.
	closing := false
	for {
		m, err := c.next(10 * time.Second)
		if err != nil {
			t.Fatalf("close %d: %v", code, err)
		}
		if m.op == rawClose {
			if !closing {
				t.Fatalf("the server closed first: %q", m.payload)
			}
			if len(m.payload) < 2 || int(binary.BigEndian.Uint16(m.payload)) != code {
				t.Fatalf("close frame %q, want the echo of code %d", m.payload, code)
			}
			break
		}
		if m.op != rawText {
			t.Fatalf("unexpected frame %#x %q", m.op, m.payload)
		}
		if _, keepalive := eventText(t, p, m); !keepalive && !closing {
			closing = true
			if err := c.write(rawClose, binary.BigEndian.AppendUint16(nil, uint16(code))); err != nil {
				t.Fatal(err)
			}
			// Enough is on its way; posting more would only take the
			// CPU from the reader that the close handshake waits for.
			bg.end()
		}
	}
	// After the echo, the server ends the connection.
	if _, err := c.next(closeGrace + 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("after the close echo: %v, want the connection ended", err)
	}
	bg.end()
	if postErr != nil {
		t.Fatal(postErr)
	}
	waitFor(t, "the socket to be released", func() bool { return r.members() == 0 })
}

// TestCloseEchoDropsTheWritersBatch: the writer takes everything queued
// as one batch; when the client closes while that batch is being
// written, the echo follows the write under way, and the rest of the
// batch is dropped like what is still queued. Before, the writer wrote the
// whole batch first: under load, megabytes, and the echo came after
// closeGrace, when the server had already cut the connection.
func TestCloseEchoDropsTheWritersBatch(t *testing.T) {
	const events = 100
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	room := bigRoom(r, "batch")
	c := r.dialRaw(wspTransport.name, 4096)
	c.start(wspTransport, streamQuery, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })

	// The client reads nothing while the events are posted: a write to it
	// blocks, and the rest queue behind it.
	if err := postEvents(r, room, events, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Events reach the socket in order: once the last is queued, no
	// other is on its way. The writer took its batch when few had come.
	last := fmt.Sprintf(`"%05d `, events-1)
	waitFor(t, "the events to queue", func() bool {
		queued, text := lastQueued(r)
		return queued >= events/2 && strings.Contains(text, last)
	})
	// Reading lets the blocked write end; the writer then takes the whole
	// queue as its next batch.
	read := 0
	for queuedFrames(r) > 0 {
		if _, err := c.next(10 * time.Second); err != nil {
			t.Fatalf("after %d frames: %v", read, err)
		}
		read++
	}
	if err := c.write(rawClose, binary.BigEndian.AppendUint16(nil, 4000)); err != nil {
		t.Fatal(err)
	}
	// What is still written: the rest of the write under way (at most
	// batchBytes and one frame: two of these ~31 KB frames) and perhaps
	// the rest of one frame begun before it.
	after := 0
	for {
		m, err := c.next(10 * time.Second)
		if err != nil {
			t.Fatalf("%d frames after the close: %v", after, err)
		}
		if m.op == rawClose {
			if code := binary.BigEndian.Uint16(m.payload); code != 4000 {
				t.Fatalf("close %d, want the echo of 4000", code)
			}
			break
		}
		after++
	}
	if most := 3; after > most {
		t.Fatalf("%d frames came after the close and before its echo (%d before the close), want at most %d", after, read, most)
	}
	t.Logf("%d frames read before the close, %d after it, then the echo", read, after)
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCloseFromAStalledPeer: a client that stops reading and then closes
// is let go within closeGrace, although the writer is stuck in a write to
// it and the close echo cannot be sent.
func TestCloseFromAStalledPeer(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	room := bigRoom(r, "stalled")
	c := r.dialRaw(wspTransport.name, 4096)
	c.start(wspTransport, streamQuery, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	bg := newBackground(t)
	var postErr error
	bg.wg.Go(func() { postErr = postEvents(r, room, 20, bg.stop, nil) })
	waitFor(t, "frames to queue behind a write the client does not read", func() bool { return queuedFrames(r) > 0 })

	start := time.Now()
	if err := c.write(rawClose, binary.BigEndian.AppendUint16(nil, 1000)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the socket to be released", func() bool { return r.openSockets() == 0 })
	if took := time.Since(start); took > closeGrace+time.Second {
		t.Fatalf("the socket was released %v after the client's close, want at most closeGrace (%v) and a little", took, closeGrace)
	}
	bg.end()
	if postErr != nil {
		t.Fatal(postErr)
	}
}

// queuedFrames counts the frames queued on the replica's sockets.
func queuedFrames(r *replica) int {
	ss := r.server.sessions
	ss.mu.Lock()
	defer ss.mu.Unlock()
	n := 0
	for s := range ss.open {
		c, ok := s.(*wsConn)
		if !ok {
			continue
		}
		c.queue.mu.Lock()
		n += len(c.queue.items)
		c.queue.mu.Unlock()
	}
	return n
}

// lastQueued returns how many frames are queued on the replica's one
// socket, and the payload of the last one.
func lastQueued(r *replica) (n int, text string) {
	ss := r.server.sessions
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for s := range ss.open {
		c, ok := s.(*wsConn)
		if !ok {
			continue
		}
		c.queue.mu.Lock()
		n = len(c.queue.items)
		if n > 0 && c.queue.items[n-1].data != nil {
			text = string(c.queue.items[n-1].data.bytes)
		}
		c.queue.mu.Unlock()
	}
	return n, text
}

// TestBrokenFramingIsClosedThroughTheWriter: a frame that breaks RFC 6455
// is answered with 1002 by the socket's writer (gorilla may not write), on
// both protocols, and the server then ends the connection. Broken pings
// among them: the reader takes well-formed client pings and pongs itself
// (takeControlFrames) and must leave every other to gorilla's checks.
func TestBrokenFramingIsClosedThroughTheWriter(t *testing.T) {
	r := newReplica(t, nil)
	frames := []struct {
		name  string
		frame func() []byte
	}{
		{"reserved opcode", func() []byte { return appendClientFrame(nil, 0x3, []byte("reserved opcode")) }},
		{"unmasked ping", func() []byte { return []byte{0x80 | rawPing, 2, 'h', 'i'} }},
		{"fragmented ping", func() []byte { f := appendClientFrame(nil, rawPing, []byte("hi")); f[0] &^= 0x80; return f }},
		{"ping with a reserved bit", func() []byte { f := appendClientFrame(nil, rawPing, []byte("hi")); f[0] |= 0x40; return f }},
		{"ping of 126 bytes", func() []byte { return appendClientFrame(nil, rawPing, bytes.Repeat([]byte("p"), 126)) }},
	}
	for _, p := range wspProtocols {
		for _, f := range frames {
			t.Run(p.name+"/"+f.name, func(t *testing.T) { brokenFrameIsClosed(t, r.forTest(t), p, f.frame()) })
		}
	}
}

func brokenFrameIsClosed(t *testing.T, r *replica, p wspProto, frame []byte) {
	c := r.dialRaw(p.name, 0)
	c.send(`{"type":"connection_init","payload":{}}`)
	if err := c.writeAll(frame); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c.next(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for the close frame: %v", err)
		}
		if m.op == rawText {
			continue // connection_ack, ka
		}
		if m.op != rawClose || len(m.payload) < 2 || binary.BigEndian.Uint16(m.payload) != 1002 {
			t.Fatalf("got frame %#x %q, want a close frame with 1002", m.op, m.payload)
		}
		t.Logf("closed with 1002 %q", m.payload[2:])
		break
	}
	if _, err := c.next(closeGrace + 2*time.Second); err == nil || isTimeout(err) {
		t.Fatalf("after the close frame: %v, want the connection ended", err)
	}
}
