package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// trickyTexts are message texts whose characters break naive framing
// or escaping: SSE and multipart delimiters, line and paragraph
// separators, a lone CR, a byte order mark and noncharacters inside,
// astral and combining characters, HTML and JSON look-alikes.
var trickyTexts = []string{
	"a\n\ndata: {\"forged\":1}\n\nevent: complete\ndata:\n\nb",
	"x\r\n--graphql\r\nContent-Type: application/json\r\n\r\n{}\r\n--graphql--\r\ny",
	"line\u2028sep\u2029para",
	"lone\rcr",
	"bom\ufeffinside \uffff\ufffe nonchars",
	"astral 𝄞 👩\u200d👩\u200d👧\u200d👦 e\u0301\u0301\u0301 \U0010FFFD",
	"</script><!-- \\u0000 \\\" & <b>",
	"id: 1\nretry: 1\n: comment",
}

// TestTrickyTextIdenticalOnEveryTransport: a message's text must come back
// exactly as posted on every transport (graphql-ws, legacy ws, SSE over
// POST and GET, single-connection SSE, multipart), also when replayed
// from the log on resume.
func TestTrickyTextIdenticalOnEveryTransport(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("tricky-text")
	// The empty room's resumeCursor: a resume from it replays every post.
	b, _ := json.Marshal(map[string]any{"query": `query($r: ID!) { room(id: $r) { messages(last: 1) { resumeCursor } } }`, "variables": map[string]any{"r": room}})
	resp, err := postBounded(r.http.URL+"/graphql", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Data struct {
			Room struct {
				Messages struct{ ResumeCursor string }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	after := page.Data.Room.Messages.ResumeCursor
	if after == "" {
		t.Fatal("no resumeCursor")
	}
	for _, text := range trickyTexts {
		r.post(room, "alice", text)
	}
	op := mxOp{
		name:  "s-tricky-text",
		query: `subscription($r: ID!, $a: String) { roomEvents(roomId: $r, after: $a) { message { text } } }`,
		vars:  map[string]any{"r": room, "a": after},
		take:  len(trickyTexts),
	}
	for _, out := range r.mxRunAll(op, mxSubTransports) {
		if len(out.results) != len(trickyTexts) {
			t.Errorf("%s: %d results, want %d: %v", out.transport, len(out.results), len(trickyTexts), out)
			continue
		}
		for i, res := range out.results {
			var v struct {
				Data struct {
					RoomEvents struct{ Message struct{ Text string } }
				}
			}
			if err := json.Unmarshal([]byte(res), &v); err != nil {
				t.Errorf("%s: result %d is not JSON: %s", out.transport, i, res)
				continue
			}
			if got := v.Data.RoomEvents.Message.Text; got != trickyTexts[i] {
				t.Errorf("%s: text %d = %+q, want %+q", out.transport, i, got, trickyTexts[i])
			}
		}
	}
}
