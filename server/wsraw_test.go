package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// rawWS is a WebSocket client on a bare TCP connection with a strict
// frame parser of its own, for tests about the bytes on the wire. gorilla's
// client hides where frames begin and end, and a control frame written
// into the middle of a data frame shows up there only as some other error,
// or not at all.
type rawWS struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader

	wmu sync.Mutex // the test and a pinger both write

	// Reader-owned: a fragmented text message being put together.
	partial    []byte
	fragmented bool
}

// Opcodes (RFC 6455 section 5.2).
const (
	rawContinuation = 0x0
	rawText         = 0x1
	rawClose        = 0x8
	rawPing         = 0x9
	rawPong         = 0xa
)

// maxRawFrame is the largest frame the tests expect; a longer length is
// taken for bytes that are not a frame header.
const maxRawFrame = 16 << 20

// smallSendBuffers gives every accepted connection a small send buffer,
// so a large frame does not fit in it and is written in parts.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return conn, err
}

func withSmallSendBuffers(l net.Listener) net.Listener { return smallSendBuffers{l} }

// dialRaw opens a WebSocket with the given subprotocol on a TCP connection
// whose receive buffer is rcvbuf bytes (0: the system's default).
func (r *replica) dialRaw(subprotocol string, rcvbuf int) *rawWS {
	r.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	addr := r.http.Listener.Addr().String()
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = conn.Close() })
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n", addr, key, subprotocol)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		r.t.Fatalf("upgrade: %v", err)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) ||
		resp.Header.Get("Sec-WebSocket-Protocol") != subprotocol {
		r.t.Fatalf("upgrade answered %s %v", resp.Status, resp.Header)
	}
	_ = conn.SetDeadline(time.Time{})
	return &rawWS{t: r.t, conn: conn, br: br}
}

// write sends one masked frame, as a client must.
func (c *rawWS) write(op byte, payload []byte) error {
	return c.writeAll(appendClientFrame(nil, op, payload))
}

// pings sends pings from..from+n-1 in one write, so that the server reads
// them at once and answers them one after another.
func (c *rawWS) pings(from, n int) error {
	var frames []byte
	for i := from; i < from+n; i++ {
		frames = appendClientFrame(frames, rawPing, fmt.Appendf(nil, "%s%06d", pingMark, i))
	}
	return c.writeAll(frames)
}

func (c *rawWS) writeAll(frames []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(frames)
	return err
}

// appendClientFrame appends a masked frame, as a client must send it.
func appendClientFrame(frame []byte, op byte, payload []byte) []byte {
	frame = append(frame, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xffff:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	frame = append(frame, key[:]...)
	for i, b := range payload {
		frame = append(frame, b^key[i%4])
	}
	return frame
}

// send sends a text message; only on the test's goroutine.
func (c *rawWS) send(text string) {
	c.t.Helper()
	if err := c.write(rawText, []byte(text)); err != nil {
		c.t.Fatalf("write %s: %v", text, err)
	}
}

// start completes connection_init and subscribes under id "s"; only on
// the test's goroutine.
func (c *rawWS) start(p wspProto, query string, vars map[string]any) {
	c.t.Helper()
	c.send(`{"type":"connection_init","payload":{}}`)
	if m, err := c.next(5 * time.Second); err != nil || m.op != rawText || !bytes.Contains(m.payload, []byte(`"connection_ack"`)) {
		c.t.Fatalf("waiting for connection_ack: %q, %v", m.payload, err)
	}
	msg, _ := json.Marshal(map[string]any{"id": "s", "type": p.start, "payload": map[string]any{"query": query, "variables": vars}})
	c.send(string(msg))
}

// rawMessage is a whole text message or a control frame.
type rawMessage struct {
	op      byte
	payload []byte
}

// next reads the next message within timeout, checking every frame
// strictly. Control frames may come between the fragments of a text
// message (RFC 6455 section 5.4), never inside a frame. The server's pings
// are skipped: it sends one as keepalive (legacy graphql-ws) whenever a
// test runs longer than PingInterval, as a loaded machine makes it do.
func (c *rawWS) next(timeout time.Duration) (rawMessage, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		op, fin, payload, err := c.frame()
		if err != nil {
			return rawMessage{}, err
		}
		switch op {
		case rawPing:
			continue
		case rawClose, rawPong:
			return rawMessage{op, payload}, nil
		case rawText:
			if c.fragmented {
				return rawMessage{}, errors.New("a text frame inside a fragmented message")
			}
			c.partial = append(c.partial[:0], payload...)
		case rawContinuation:
			if !c.fragmented {
				return rawMessage{}, errors.New("a continuation frame outside a fragmented message")
			}
			c.partial = append(c.partial, payload...)
		}
		if c.fragmented = !fin; c.fragmented {
			continue
		}
		msg := bytes.Clone(c.partial)
		if i := bytes.Index(msg, []byte(pingMark)); i >= 0 {
			return rawMessage{}, fmt.Errorf("a ping's payload inside a text message (a pong written into a frame): %q",
				msg[max(i-16, 0):min(i+32, len(msg))])
		}
		if !utf8.Valid(msg) || !json.Valid(msg) {
			return rawMessage{}, fmt.Errorf("a text message of %d bytes is not JSON: %.60q … %.60q",
				len(msg), msg, msg[max(len(msg)-60, 0):])
		}
		return rawMessage{rawText, msg}, nil
	}
}

// pingMark starts the payload of every ping the tests send.
const pingMark = "PING-"

// frame reads one frame and checks its header: an opcode a server sends,
// no reserved bit, no mask, the length in its shortest form, and for a
// control frame FIN set and at most 125 bytes.
func (c *rawWS) frame() (op byte, fin bool, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, false, nil, err
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	switch {
	case h[0]&0x70 != 0:
		return 0, false, nil, fmt.Errorf("reserved bits set in frame header % x", h)
	case op != rawContinuation && op != rawText && op != rawClose && op != rawPing && op != rawPong:
		return 0, false, nil, fmt.Errorf("opcode %#x in frame header % x", op, h)
	case h[1]&0x80 != 0:
		return 0, false, nil, fmt.Errorf("a masked frame from the server: % x", h)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return 0, false, nil, err
		}
		if n = uint64(binary.BigEndian.Uint16(ext[:])); n < 126 {
			return 0, false, nil, fmt.Errorf("16-bit length %d in frame header % x % x", n, h, ext)
		}
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return 0, false, nil, err
		}
		if n = binary.BigEndian.Uint64(ext[:]); n <= 0xffff || n > maxRawFrame {
			return 0, false, nil, fmt.Errorf("64-bit length %d in frame header % x % x", n, h, ext)
		}
	}
	if op >= rawClose && (!fin || n > 125) {
		return 0, false, nil, fmt.Errorf("control frame %#x with FIN %v and %d bytes", op, fin, n)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return 0, false, nil, err
	}
	return op, fin, payload, nil
}
