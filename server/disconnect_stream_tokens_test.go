package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// disconnectingRecorder disconnects user when the stream's head is
// written: after the stream is open (a session DisconnectUser finds) and
// before its mutation runs.
type disconnectingRecorder struct {
	*httptest.ResponseRecorder
	server *Server
	user   string
	done   bool
}

func (w *disconnectingRecorder) WriteHeader(code int) {
	w.ResponseRecorder.WriteHeader(code)
	if !w.done {
		w.done = true
		w.server.DisconnectUser(w.user)
	}
}

// TestDisconnectedStreamMutationGivesBackItsTokens: a mutation on a
// distinct-connections event stream whose user is disconnected after the
// stream opened and before the mutation began does not run (httpStream.run)
// and gives back the tokens it spent, as one refused at admission does
// (sseTransport.stream): otherwise the user, connecting again with new
// credentials, finds its allowance spent by a mutation that never ran.
func TestDisconnectedStreamMutationGivesBackItsTokens(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MutationRate = 0.001 // one token, not refilled within the test
		o.Limits.MutationBurst = 1
	})
	room := r.room("disconnect-tokens")
	body, _ := json.Marshal(map[string]any{"query": heldMutation, "variables": map[string]any{"r": room}})
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", mediaEventStream)
	req.Header.Set("X-Herald-User", "ann")
	w := &disconnectingRecorder{ResponseRecorder: httptest.NewRecorder(), server: r.server, user: "ann"}
	r.server.ServeHTTP(w, req)
	got := w.Body.String()
	if !strings.Contains(got, codeForbidden) {
		t.Fatalf("a stream disconnected before its mutation ran answered:\n%s\nwant FORBIDDEN", got)
	}
	if strings.Contains(got, "kept") {
		t.Fatalf("the mutation ran after all:\n%s", got)
	}

	// ann connects again: the one mutation allowed was not run.
	status, answer := r.do(singleReq{method: http.MethodPost, user: "ann", body: map[string]any{
		"query": heldMutation, "variables": map[string]any{"r": room}}})
	if status != http.StatusOK || strings.Contains(answer, codeRateLimited) {
		t.Fatalf("ann's mutation after a disconnected one that never ran: %d %s; want it allowed (its token given back)", status, answer)
	}
}
