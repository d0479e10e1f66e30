package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRelayedAnonymousMutationsCountByTheirClient: a single-connection-mode
// mutation that reaches a replica other than its stream's holder is
// relayed, and the holder counts an anonymous one by the address of the
// client that sent it (relayClientAddrKey), as it counts those sent to it:
// relayed with none, every anonymous client whose operations are relayed
// (behind a load balancer without sticky sessions, most of them) shared
// one allowance on the holder. A client's own header of that name is not
// believed: it would let a client pick a new allowance with each request.
func TestRelayedAnonymousMutationsCountByTheirClient(t *testing.T) {
	type send struct {
		addr     string      // the client's address, as the replica it reaches sees it
		header   http.Header // the client's headers
		query    string
		wantCode string // "" when it runs
	}
	for _, tc := range []struct {
		name  string
		sends []send
	}{
		{"two clients", []send{
			{addr: "198.51.100.7:40000", query: twoBumps}, // spends its burst
			{addr: "203.0.113.9:40000", query: oneBump},
		}},
		{"one client", []send{
			{addr: "198.51.100.7:40000", query: twoBumps},
			{addr: "198.51.100.7:40001", query: oneBump, wantCode: codeRateLimited}, // another connection
		}},
		{"a client naming its address", []send{
			{addr: "198.51.100.7:40000", header: http.Header{"Herald-Relay-Client-Addr": {"203.0.113.50:1"}}, query: twoBumps},
			{addr: "198.51.100.7:40000", header: http.Header{"Herald-Relay-Client-Addr": {"203.0.113.51:1"}}, query: oneBump,
				wantCode: codeRateLimited},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := fakeReplicaWith(t, slowMutations)
			relay := sender.server.sseSingle.relay
			holder := fakeReplicaWith(t, func(o *Options) { slowMutations(o); o.Relay = relay })
			token := holder.reserve("")
			st := holder.openSingle(token, "")
			for i, s := range tc.sends {
				id := string(rune('a' + i))
				body, _ := json.Marshal(map[string]any{"query": s.query, "extensions": map[string]any{"operationId": id}})
				req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
				req.RemoteAddr = s.addr
				for k, vs := range s.header {
					req.Header[k] = vs
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(streamTokenHeader, token)
				w := httptest.NewRecorder()
				sender.server.ServeHTTP(w, req)
				if w.Code != http.StatusAccepted {
					t.Fatalf("send %d: %d %s, want 202", i, w.Code, w.Body)
				}
				ev := st.expect("next", id)
				st.expect("complete", id)
				var p struct {
					Errors []gqlError `json:"errors"`
				}
				if err := json.Unmarshal(ev.payload, &p); err != nil {
					t.Fatalf("send %d: payload %s: %v", i, ev.payload, err)
				}
				var code string
				if len(p.Errors) > 0 {
					code, _ = p.Errors[0].Extensions["code"].(string)
				}
				if code != s.wantCode {
					t.Fatalf("send %d (%s from %s): code %q, want %q", i, s.query, s.addr, code, s.wantCode)
				}
			}
		})
	}
}

// TestRelayedRequestKeepsItsClientsAddress: the holder serves a relayed
// request with the address of the client the forwarding replica took it
// from, which only that replica can set; a message from a replica of an
// earlier version, which says none (and relays the client's headers as
// they came), is served without one, as before.
func TestRelayedRequestKeepsItsClientsAddress(t *testing.T) {
	fromThisVersion := func(remote string, header http.Header) RelayMessage {
		req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		req.RemoteAddr = remote
		for k, vs := range header {
			req.Header[k] = vs
		}
		msg, rerr := relayRequest(req, 1<<10)
		if rerr != nil {
			t.Fatal(rerr.msg)
		}
		return msg
	}
	fromAnEarlierVersion := func(header http.Header) RelayMessage {
		h := http.Header{}
		for k, vs := range header {
			h[k] = vs
		}
		h.Set(relayMethodHeader, http.MethodPost)
		h.Set(relayTargetHeader, "/graphql")
		return RelayMessage{Header: h}
	}
	forged := http.Header{"Herald-Relay-Client-Addr": {"203.0.113.50:1"}}
	for _, tc := range []struct {
		name string
		msg  RelayMessage
		want string
	}{
		{"this version", fromThisVersion("198.51.100.7:40000", nil), "198.51.100.7:40000"},
		{"this version, a client naming its address", fromThisVersion("198.51.100.7:40000", forged), "198.51.100.7:40000"},
		{"this version, no address", fromThisVersion("", forged), ""},
		{"an earlier version", fromAnEarlierVersion(nil), ""},
		{"an earlier version, a client naming its address", fromAnEarlierVersion(forged), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := replayedRequest(context.Background(), tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if r.RemoteAddr != tc.want {
				t.Fatalf("RemoteAddr %q, want %q", r.RemoteAddr, tc.want)
			}
			//lint:ignore SA1008 the key is not canonical on purpose (see relayClientAddrKey)
			if _, ok := r.Header[relayClientAddrKey]; ok {
				t.Fatalf("the relayed request's headers keep %s: %v", relayClientAddrKey, r.Header)
			}
		})
	}
}
