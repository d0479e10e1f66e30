package main

import (
	"net"
	"net/http"
	"sync"
)

// silentConns tracks the HTTP server's connections that have not sent a
// byte yet (http.StateNew): a browser's preconnect, an HTTP client's spare
// connection, a proxy's pool. http.Server.Shutdown counts such a
// connection as busy until it is 5 s old, so one of them would hold a stop
// with nothing in flight for up to 5 s, and fail one whose
// --shutdown-timeout is shorter. They carry no request, so the stop closes
// them (closeAll) and loses nothing.
type silentConns struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool // closeAll has run: a connection still arriving is closed at once
}

func newSilentConns() *silentConns { return &silentConns{conns: map[net.Conn]struct{}{}} }

// track is the server's ConnState hook.
func (s *silentConns) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state != http.StateNew {
		delete(s.conns, c) // it has spoken, or is gone
		return
	}
	if s.closing {
		_ = c.Close()
		return
	}
	s.conns[c] = struct{}{}
}

// closeAll closes every connection that has sent nothing, and those
// accepted from now on before they do.
func (s *silentConns) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for c := range s.conns {
		_ = c.Close() // an error: it is closed already
	}
	clear(s.conns)
}
