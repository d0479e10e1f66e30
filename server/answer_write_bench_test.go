package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkAnswerWrite measures answerDeadline.write end to end, over a
// loopback connection to a client that reads as fast as it can: the cost
// of writing a large answer in parts of answerChunk, each under a deadline
// of its own, and of a small answer's one deadline and one write, the
// common case.
//
//	go test -run '^$' -bench AnswerWrite -benchmem ./server
func BenchmarkAnswerWrite(b *testing.B) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		for _, size := range []int{1 << 10, 1 << 20} {
			b.Run(fmt.Sprintf("%s/%dB", proto, size), func(b *testing.B) {
				body := bytes.Repeat([]byte("x"), size)
				d := answerDeadline{timeout: 10 * time.Second}
				hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", jsonContentType)
					_, _ = d.write(w, body)
				}))
				if proto == "HTTP/2" {
					hs.EnableHTTP2 = true
					hs.StartTLS()
				} else {
					hs.Start()
				}
				defer hs.Close()
				client := hs.Client()
				b.SetBytes(int64(size))
				b.ResetTimer()
				for b.Loop() {
					resp, err := client.Get(hs.URL)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || n != int64(size) {
						b.Fatalf("read %d bytes of %d: %v", n, size, err)
					}
				}
			})
		}
	}
}
