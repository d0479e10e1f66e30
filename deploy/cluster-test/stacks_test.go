package main

import "testing"

// A goroutine dump as the Go runtime prints it on SIGQUIT, cut short.
const sigquitDump = `time=2026-12-04T20:00:00Z level=INFO msg="draining"
SIGQUIT: quit
PC=0x47e1a1 m=0 sigcode=0

goroutine 0 gp=0x1efa000 m=0 mp=0x1efb7c0 [idle]:
runtime.futex(0x1efb918, 0x80, 0x0, 0x0, 0x0, 0x0)
	/usr/local/go/src/runtime/sys_linux_amd64.s:557 +0x21

goroutine 1 gp=0x2a78d71841e0 m=nil [chan receive, 2 minutes]:
runtime.gopark(0x2a78d7685c60?, 0x2?, 0x0?, 0xac?, 0x2a78d7685984?)
	/usr/local/go/src/runtime/proc.go:462 +0xce
github.com/heraldhq/herald/server.(*sessions).waitServed(0x2a78d7194000, {0x1a2b3c0, 0x2a78d71a0000})
	/src/server/sessions.go:213 +0x1c5
github.com/heraldhq/herald/server.(*Server).Drain(0x2a78d7194000, {0x1a2b3c0, 0x2a78d71a0000}, 0x77359400)
	/src/server/server.go:303 +0x85

goroutine 40 gp=0x2a78d7185860 m=nil [IO wait]:
internal/poll.runtime_pollWait(0x7f2d3c1e0e00, 0x72)
	/usr/local/go/src/runtime/netpoll.go:351 +0x85
github.com/heraldhq/herald/server.(*wsConn).serve(0x2a78d7300000)
	/src/server/ws.go:284 +0x25
created by github.com/heraldhq/herald/server.(*wsTransport).Do in goroutine 38
	/src/server/ws.go:105 +0x3c5

goroutine 41 gp=0x2a78d7185e00 m=nil [IO wait]:
internal/poll.runtime_pollWait(0x7f2d3c1e0c00, 0x72)
	/usr/local/go/src/runtime/netpoll.go:351 +0x85
github.com/heraldhq/herald/server.(*wsConn).serve(0x2a78d7300400)
	/src/server/ws.go:284 +0x25

goroutine 42 gp=0x2a78d7186000 m=nil [select]:
github.com/nats-io/nats.go.(*Conn).flusher(0x2a78d7400000)
	/root/go/pkg/mod/github.com/nats-io/nats.go@v1.55.0/nats.go:3703 +0x3a
created by github.com/heraldhq/herald/pubsub.Open in goroutine 1
`

func TestSummarizeStacks(t *testing.T) {
	const herald = "github.com/heraldhq/herald/"
	for _, c := range []struct {
		name, log string
		top       int
		want      string
	}{
		{"counted, most first", sigquitDump, 8,
			"server.(*wsConn).serve [IO wait] ×2; server.(*sessions).waitServed [chan receive] ×1"},
		{"the top only", sigquitDump, 1, "server.(*wsConn).serve [IO wait] ×2"},
		{"no dump", "time=... msg=draining\n", 8, "no goroutine dump in the log"},
		{"none of Herald's", "SIGQUIT: quit\n\ngoroutine 1 gp=0x1 m=nil [select]:\nruntime.gopark()\n", 8,
			"no goroutine in Herald's code"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := summarizeStacks(c.log, herald, c.top); got != c.want {
				t.Errorf("summarizeStacks = %q, want %q", got, c.want)
			}
		})
	}
}
