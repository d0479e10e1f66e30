package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// threadWriteCalls is the number of write system calls (write,
// writev, sendmsg...) the calling OS thread has made: syscw of
// /proc/thread-self/io. ok is false where that is not available.
func threadWriteCalls() (n int64, ok bool) {
	f, err := os.Open("/proc/thread-self/io")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, found := strings.CutPrefix(sc.Text(), "syscw: "); found {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// fewestWriteCallsFor is the fewest write system calls, over a few tries,
// that one net.Buffers.WriteTo of three parts takes on conn, the peer
// reading everything.
func fewestWriteCallsFor(t *testing.T, conn, peer net.Conn) int64 {
	t.Helper()
	parts := [][]byte{[]byte("\x81\x7e\x01\x00"), bytes.Repeat([]byte("p"), 250), []byte("}")}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	best := int64(-1)
	for range 5 {
		bufs := make(net.Buffers, 0, 3)
		for _, p := range parts {
			bufs = append(bufs, p)
		}
		runtime.LockOSThread()
		before, ok := threadWriteCalls()
		if !ok {
			runtime.UnlockOSThread()
			t.Skip("no /proc/thread-self/io")
		}
		if _, err := bufs.WriteTo(conn); err != nil {
			runtime.UnlockOSThread()
			t.Fatal(err)
		}
		after, _ := threadWriteCalls()
		runtime.UnlockOSThread()
		if d := after - before; best < 0 || d < best {
			best = d
		}
		_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(peer, make([]byte, total)); err != nil {
			t.Fatal(err)
		}
	}
	return best
}

// TestConnLimitKeepsWritevAndSendfile: the server writes a WebSocket
// frame in parts with net.Buffers.WriteTo (deadlineConn.writeFrameParts,
// "with one system call where the connection allows (writev), so that a
// large payload is not copied next to its header for every socket"), and
// SSE streams the same way (streamConn). On a connection the listener
// accepted plainly, that is one writev, and it must stay one on a
// connection connLimit accepted: a wrapper embedding the net.Conn
// interface hid *net.TCPConn's writev, so every frame cost a write per
// part (and, with TCP_NODELAY, went out in as many segments), and its
// ReadFrom, net/http's sendfile.
func TestConnLimitKeepsWritevAndSendfile(t *testing.T) {
	// Control: a connection as the listener accepted it before connLimit.
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	pc, err := net.DialTimeout("tcp", plain.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ps, err := plain.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	direct := fewestWriteCallsFor(t, ps, pc)

	l, _ := limitOn(t, 4)
	client, server := dialAccept(t, l)
	defer server.Close()
	limited := fewestWriteCallsFor(t, server, client)

	t.Logf("write system calls for one frame in 3 parts: %d on a plain accepted conn, %d on a connLimit one (%T)", direct, limited, server)
	if limited > direct {
		t.Errorf("a frame written in 3 parts takes %d write system calls on a connection connLimit accepted, %d on the same connection unwrapped: "+
			"limitedConn hides the socket's writev (net.Buffers.WriteTo falls back to one Write per part)", limited, direct)
	}
	if _, ok := server.(io.ReaderFrom); !ok {
		t.Errorf("a connection connLimit accepted (%T) is no io.ReaderFrom: net/http's response.ReadFrom (sendfile/splice) no longer reaches the socket", server)
	}
}
