package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// letReaderPark gives the socket's reader time to park after its last
// input (the checks below must hold for a parked reader too).
func letReaderPark() { time.Sleep(100 * time.Millisecond) }

// TestWSFrameUnmaskedPingAtIdleSocket: a client's ping that is not
// masked breaks RFC 6455 (section 5.1): the server fails the connection
// with 1002 and does not answer it with a pong, also when it arrives at an
// idle socket with more bytes behind it, where the reader takes control
// frames itself (takeControlFrames).
func TestWSFrameUnmaskedPingAtIdleSocket(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			c := rfcDial(t, r, p)
			letReaderPark()
			frames := rfcFrame(rawPing, true, 0, false, 0, []byte("unmasked"))
			frames = append(frames, rfcFrame(rawPing, true, 0, true, 0, []byte("masked ping behind it"))...)
			if err := c.writeAll(frames); err != nil {
				t.Fatal(err)
			}
			before, cl := rfcUntilClose(t, c, 5*time.Second)
			for _, g := range before {
				if g.op == rawPong {
					t.Errorf("an unmasked ping was answered: %v", g)
				}
			}
			if got := rfcCode(cl); got != 1002 {
				t.Errorf("got %v, want close code 1002", cl)
			}
		})
	}
}

// TestWSFrameUnsolicitedPongNotAnswered: a pong from the client is
// a heartbeat (RFC 6455 section 5.5.3) and is not answered; a ping behind
// it is answered with its own payload.
func TestWSFrameUnsolicitedPongNotAnswered(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			c := rfcDial(t, r, p)
			letReaderPark()
			frames := rfcFrame(rawPong, true, 0, true, 0, []byte("heartbeat"))
			frames = append(frames, rfcFrame(rawPing, true, 0, true, 0, []byte("the ping"))...)
			if err := c.writeAll(frames); err != nil {
				t.Fatal(err)
			}
			for {
				g, err := rfcRead(c, 5*time.Second)
				if err != nil {
					t.Fatalf("waiting for the pong: %v", err)
				}
				if g.op != rawPong {
					continue // keepalives
				}
				if string(g.payload) != "the ping" {
					t.Fatalf("first pong %q, want %q: the client's pong was answered", g.payload, "the ping")
				}
				break
			}
		})
	}
}

// TestWSFrameDataBeforeHandshakeRefused: a client that sends a frame
// before the server's 101 breaks RFC 6455 (section 4.1); the server does
// not switch protocols and then lose the frame, leaving the client waiting
// for an answer that never comes.
func TestWSFrameDataBeforeHandshakeRefused(t *testing.T) {
	r := newReplica(t, nil)
	addr := r.http.Listener.Addr().String()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := fmt.Sprintf("GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n", addr, key, subprotocolTransportWS)
	early := append([]byte(req), appendClientFrame(nil, rawText, []byte(`{"type":"connection_init","payload":{}}`))...)
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(early); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return // refused: the connection was closed
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return // refused with a status
	}
	// Switched: then the early frame must not have been lost.
	c := &rawWS{t: t, conn: conn, br: br}
	m, err := c.next(3 * time.Second)
	if err != nil || m.op != rawText || !bytes.Contains(m.payload, []byte(`"connection_ack"`)) {
		t.Fatalf("upgraded with a frame sent ahead of the 101, which was lost: got %q, %v", m.payload, err)
	}
}

// TestWSFrameQueueBound: the outbound queue refuses a push once it
// holds maxItems items, or maxBytes bytes already (push's contract), and
// takes a complete whatever it holds.
func TestWSFrameQueueBound(t *testing.T) {
	t.Run("items", func(t *testing.T) {
		q := newOutQueue(3, 1<<20, func() {})
		for i := range 3 {
			if !q.push(outItem{kind: frameRaw, raw: "x"}) {
				t.Fatalf("push %d refused below the bound", i)
			}
		}
		if q.push(outItem{kind: frameRaw, raw: "x"}) {
			t.Fatal("a fourth item was queued on a queue of 3")
		}
		if !q.push(outItem{kind: frameComplete, op: &operation{idJSON: `"1"`}}) {
			t.Fatal("a complete was refused")
		}
	})
	t.Run("bytes", func(t *testing.T) {
		it := outItem{kind: frameRaw, raw: strings.Repeat("b", 100)}
		q := newOutQueue(100, 2*it.size(), func() {})
		for i := range 2 {
			if !q.push(it) {
				t.Fatalf("push %d refused below the bound", i)
			}
		}
		// Exactly maxBytes queued: full.
		if q.push(outItem{kind: frameRaw, raw: "x"}) {
			t.Fatal("queued beyond maxBytes")
		}
	})
}

// TestWSFrameNextOfExactlyLargePayload: a next frame whose payload
// is exactly largePayload bytes, written in a batch, is whole: the copied
// part and the shared part (if any) make one frame of the length its
// header gives.
func TestWSFrameNextOfExactlyLargePayload(t *testing.T) {
	for _, n := range []int{largePayload - 1, largePayload, largePayload + 1} {
		body := []byte(`{"data":{"x":"` + strings.Repeat("p", n-len(`{"data":{"x":""}}`)) + `"}}`)
		if len(body) != n {
			t.Fatalf("payload of %d bytes, want %d", len(body), n)
		}
		c := &wsConn{machine: wsMachine{proto: transportWS}}
		it := outItem{kind: frameNext, op: &operation{idJSON: `"1"`}, data: &payload{bytes: body}}
		frame := c.appendItem(nil, &it)
		if shared, ok := it.sharedPart(); ok {
			frame = append(append(frame, shared...), closingBrace...)
		}
		if len(frame) < 4 || frame[1] != 126 {
			t.Fatalf("payload %d: frame header % x", n, frame[:min(len(frame), 4)])
		}
		length := int(binary.BigEndian.Uint16(frame[2:4]))
		msg := frame[4:]
		want := `{"id":"1","type":"next","payload":` + string(body) + `}`
		if length != len(msg) || string(msg) != want {
			t.Errorf("payload %d: header says %d bytes, frame carries %d (%.40q…)", n, length, len(msg), msg)
		}
	}
}

// TestWSFrameStalledClientIsDropped: a client that stops reading
// while answers are queued for it, too few to fill its queue (no slow
// consumer close), is given up on once a write has waited WriteTimeout:
// the socket's writer does not wait on it forever, holding its place.
func TestWSFrameStalledClientIsDropped(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.WriteTimeout = 300 * time.Millisecond
		o.QueueBytes = 64 << 20
		o.QueueMessages = 100000
		o.PingInterval = time.Minute
	}, withSmallSendBuffers)
	c := rfcDial(t, r, wspTransport)
	const q = `{ __schema { types { name description fields { name description args { name description } } } } }`
	var frames []byte
	for i := range 40 {
		msg := fmt.Sprintf(`{"id":"q%d","type":"subscribe","payload":{"query":%q}}`, i, q)
		frames = appendClientFrame(frames, rawText, []byte(msg))
	}
	if err := c.writeAll(frames); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing from now on.
	deadline := time.Now().Add(8 * time.Second)
	for r.openSockets() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a client that reads nothing still holds its socket 8 s on, WriteTimeout %v", 300*time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWSFrameQueueCountsWhatIsLeft: the queue's bytes bound counts
// what queued items still cost: for the rest of a frame begun by a direct
// write, the bytes still to go (not the whole shared payload, which would
// close a socket as a slow consumer that has all but taken it), and for
// every item at least its bookkeeping, so that QueueBytes bounds the
// memory of many tiny frames too.
func TestWSFrameQueueCountsWhatIsLeft(t *testing.T) {
	t.Run("rest of a large frame", func(t *testing.T) {
		q := newOutQueue(100, 64<<10, func() {})
		if !q.claim() {
			t.Fatal("claim failed")
		}
		big := &payload{bytes: bytes.Repeat([]byte("z"), 1<<20)}
		q.releaseRest(&outItem{kind: frameWire, raw: "", data: big, off: len(big.bytes) - 10})
		if !q.push(outItem{kind: frameRaw, raw: "after the rest"}) {
			t.Fatal("refused behind a rest of 10 bytes: the rest was counted as its whole payload")
		}
	})
	t.Run("tiny frames", func(t *testing.T) {
		const maxBytes = 4800
		q := newOutQueue(1<<20, maxBytes, func() {})
		n := 0
		for n < 100000 && q.push(outItem{kind: frameRaw, raw: "x"}) {
			n++
		}
		// An outItem is 48 bytes on 64-bit platforms.
		if limit := maxBytes/48 + 1; n > limit {
			t.Fatalf("%d one-byte frames queued under QueueBytes %d, want at most %d", n, maxBytes, limit)
		}
	})
}
