//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package main

import "net"

// clientBacklogged cannot look into the listen backlog here: every Accept
// that finds the listener full counts as keeping a client waiting.
func clientBacklogged(net.Listener) (waiting, known bool) { return false, false }
