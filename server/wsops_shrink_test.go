package server

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestIdleSocketKeepsNoOperationMaps: a socket whose operations have all
// ended, however they ended, keeps no room in its maps for the hundred it
// once had open (a Go map keeps the room it grew to: about 3.5 KB for
// ops, a third of what an idle socket costs), and its maps work as before.
func TestIdleSocketKeepsNoOperationMaps(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	tr := &wsTransport{metrics: m, execs: &sharedExecutions{}}
	const sockets, opsEach = 256, 100
	conns := make([]*wsConn, sockets)
	for i := range conns {
		conns[i] = &wsConn{t: tr, ops: make(map[string]*operation)}
	}
	before := liveHeap()
	for _, c := range conns {
		ops := make([]*operation, opsEach)
		for j := range ops {
			ops[j], _ = c.addOp(strconv.Itoa(j))
		}
		for j, op := range ops {
			switch j % 3 {
			case 0: // ended by the server, its last frame written
				c.removeOp(op)
				c.lastFrameTaken(op)
			case 1: // completed by the client
				c.onComplete(op.id)
			case 2: // ended by the server, then completed by the client before its last frame went
				c.removeOp(op)
				c.onComplete(op.id)
			}
		}
	}
	grown := (int64(liveHeap()) - int64(before)) / sockets
	t.Logf("live heap %+d bytes per socket after %d operations opened and ended", grown, opsEach)
	if grown > 1024 {
		t.Errorf("a socket whose %d operations all ended keeps %+d bytes of heap for them", opsEach, grown)
	}
	for _, c := range conns {
		if len(c.ops) != 0 || len(c.ending) != 0 {
			t.Fatalf("%d operations open and %d ending after all ended", len(c.ops), len(c.ending))
		}
		if _, fresh := c.addOp("7"); !fresh || !c.hasOp("7") {
			t.Fatal("an id cannot be used again after the maps were replaced")
		}
		if _, fresh := c.addOp("7"); fresh {
			t.Fatal("an id in use taken again after the maps were replaced")
		}
	}
}
