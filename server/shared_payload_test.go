package server

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestSharedFrameLeavesAnExactRest: a frame with a large payload written
// without waiting (sharedFrame.writeNow) goes out as it would whole, and
// wherever the socket stops taking it, what went out followed by the rest
// (restAt) is the whole frame, byte for byte: the part of the head left,
// the payload from off, the part of the tail left.
func TestSharedFrameLeavesAnExactRest(t *testing.T) {
	head := []byte("HEAD:{\"id\":\"s\",\"payload\":")
	body := make([]byte, largePayload+3*sharedEdge+17)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	tail := []byte("}TAIL\r\n")
	whole := slices3(head, body, tail)
	// Where the socket stops: nowhere, in each part, and at each part's
	// edges (the three writes are head ∥ first edge, the middle, last
	// edge ∥ tail).
	stops := []int{0, 1, len(head) - 1, len(head), len(head) + 1, len(head) + sharedEdge - 1, len(head) + sharedEdge,
		len(head) + sharedEdge + 1, len(head) + len(body)/2, len(head) + len(body) - sharedEdge,
		len(head) + len(body) - 1, len(head) + len(body), len(head) + len(body) + 1, len(whole) - 1, len(whole)}
	for _, stop := range stops {
		t.Run(strconv.Itoa(stop), func(t *testing.T) {
			dst := append([]byte("bytes before the head"), head...)
			_, f := appendSharedFrame(dst, len(dst)-len(head), body, tail)
			if f.len() != len(whole) {
				t.Fatalf("len = %d, want %d", f.len(), len(whole))
			}
			var sent []byte
			writes := 0
			n, err := f.writeNow(func(b []byte) (int, error) {
				writes++
				m := min(len(b), stop-len(sent))
				sent = append(sent, b[:m]...)
				return m, nil
			})
			if err != nil || n != len(sent) || n != stop {
				t.Fatalf("writeNow = %d, %v after %d bytes taken; want %d, nil", n, err, len(sent), stop)
			}
			if writes > 3 {
				t.Fatalf("%d writes, want at most 3", writes)
			}
			if stop == len(whole) {
				if !bytes.Equal(sent, whole) {
					t.Fatal("the frame written whole differs from the frame")
				}
				return
			}
			rh, off, rt := f.restAt(n)
			got := slices3(sent, rh, body[off:], rt)
			if !bytes.Equal(got, whole) {
				t.Fatalf("written ∥ rest (head %d bytes, body from %d, tail %d bytes) differs from the frame", len(rh), off, len(rt))
			}
			if stop < len(head)+len(body) && !bytes.Equal(rt, tail) {
				t.Fatalf("rest of tail %q with the payload unfinished, want all of %q", rt, tail)
			}
		})
	}

	// A failing socket stops the writes and is reported with what it took.
	_, f := appendSharedFrame(append([]byte(nil), head...), 0, body, tail)
	boom := errors.New("boom")
	n, err := f.writeNow(func(b []byte) (int, error) { return 0, boom })
	if n != 0 || !errors.Is(err, boom) {
		t.Fatalf("writeNow on a failing socket = %d, %v", n, err)
	}
}

func slices3(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestSharedChunkFramesAsTheFormat: every stream format's chunk of a large
// event, written from the shared payload (parkedStream.sharedChunk), is
// byte for byte the chunk its protocol asks for: the size line, the
// format's framing with the payload in it, CRLF.
func TestSharedChunkFramesAsTheFormat(t *testing.T) {
	body := []byte(`{"data":{"x":"` + strings.Repeat("é", largePayload) + `"}}`)
	op := &operation{idJSON: `"op\"1"`}
	for _, tc := range []struct {
		name  string
		f     streamFormat
		event func(cursor string) string
	}{
		{"sse", sseFormat{}, func(cursor string) string {
			id := ""
			if cursor != "" {
				id = "id: " + cursor + "\n"
			}
			return "event: next\n" + id + "data: " + string(body) + "\n\n"
		}},
		{"sse single connection", sseSingleFormat{}, func(string) string {
			return "event: next\ndata: {\"id\":\"op\\\"1\",\"payload\":" + string(body) + "}\n\n"
		}},
		{"multipart", multipartFormat{}, func(string) string {
			return multipartPartHead + `{"payload":` + string(body) + "}" + multipartDelimiter
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, cursor := range []string{"", "cursor-42"} {
				p := &payload{bytes: body, cursor: cursor}
				ps := &parkedStream{st: &httpStream{f: tc.f}}
				f := ps.sharedChunk(new([]byte), op, p)
				event := tc.event(cursor)
				if whole := appendNext(tc.f, nil, op, p); string(whole) != event {
					t.Fatalf("cursor %q: the format frames the event as\n%.120q\nwant\n%.120q", cursor, whole, event)
				}
				want := fmt.Appendf(nil, "%x\r\n%s\r\n", len(event), event)
				got := slices3(f.first, f.body[sharedEdge:len(f.body)-sharedEdge], f.last)
				if !bytes.Equal(got, want) {
					t.Fatalf("cursor %q: shared chunk\n%.80q … %.80q\nwant\n%.80q … %.80q", cursor,
						got, got[max(len(got)-80, 0):], want, want[max(len(want)-80, 0):])
				}
				if &f.body[0] != &body[0] {
					t.Fatal("the chunk's payload is a copy, not the shared encoding")
				}
			}
		})
	}
}
