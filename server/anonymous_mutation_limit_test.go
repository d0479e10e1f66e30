package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// The mutation rate and burst (Limits.MutationRate, MutationBurst) hold
// for anonymous clients too: a domain may let them mutate (the fake
// schema's bump does, as examples/articles' mutations do). Their
// mutations count by the address they come from, so that one anonymous
// client cannot spend the allowance of every other: the IP address
// without its port, IPv4-mapped IPv6 as IPv4, IPv6 by its /64.
const (
	oneBump    = `mutation { bump }`
	twoBumps   = `mutation { a: bump b: bump }`
	threeBumps = `mutation { a: bump b: bump c: bump }`
)

// fakeReplicaWith serves the fake schema, with options edit adjusts, on a
// loopback listener for the WebSocket and stream helpers, without NATS.
func fakeReplicaWith(t *testing.T, edit func(*Options)) *replica {
	t.Helper()
	s, _ := newTestServer(t, edit)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		hs.Close()
	})
	return &replica{t: t, server: s, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
}

// slowMutations allows a burst of 2 mutations and then hardly any: no
// token comes back within a test.
func slowMutations(o *Options) {
	o.Limits.MutationRate = 0.01
	o.Limits.MutationBurst = 2
}

func TestAnonymousMutationsCountByAddress(t *testing.T) {
	s, _ := newTestServer(t, slowMutations)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	// One server throughout: each step spends what the steps before it
	// left.
	steps := []struct {
		name   string
		remote string // the connection's address, http.Request.RemoteAddr
		user   string // "": anonymous
		query  string
		code   string // the first error's extensions.code; "": it runs
	}{
		{"an anonymous mutation", "198.51.100.7:40000", "", oneBump, ""},
		{"another, from another port of the address", "198.51.100.7:40001", "", oneBump, ""},
		{"a third, beyond the burst", "198.51.100.7:40002", "", oneBump, codeRateLimited},
		{"the same address written as IPv4-mapped IPv6", "[::ffff:198.51.100.7]:40003", "", oneBump, codeRateLimited},
		{"a query is no mutation", "198.51.100.7:40004", "", `{ hello(name: "x") }`, ""},
		{"another address has its own allowance", "198.51.100.8:40000", "", twoBumps, ""},
		{"a user named as the address does not share its allowance", "198.51.100.7:40005", "198.51.100.7", twoBumps, ""},
		{"an operation of more mutations than the burst", "203.0.113.9:1", "", threeBumps, codeLimitExceeded},
		{"which spent nothing", "203.0.113.9:1", "", twoBumps, ""},
		{"an IPv6 address", "[2001:db8:1:2::1]:1", "", twoBumps, ""},
		{"another address of its /64", "[2001:db8:1:2:ffff::9]:1", "", oneBump, codeRateLimited},
		{"an address of another /64", "[2001:db8:1:3::1]:1", "", twoBumps, ""},
	}
	for _, step := range steps {
		body, _ := json.Marshal(map[string]any{"query": step.query})
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(body)))
		req.RemoteAddr = step.remote
		req.Header.Set("Content-Type", "application/json")
		if step.user != "" {
			req.Header.Set(auth.DevHeader, step.user)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		var resp struct {
			Errors []gqlError `json:"errors"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("%s: %d %s: %v", step.name, w.Code, w.Body, err)
		}
		code := ""
		if len(resp.Errors) > 0 {
			code, _ = resp.Errors[0].Extensions["code"].(string)
		}
		wantStatus := http.StatusOK
		if step.code == codeRateLimited {
			wantStatus = http.StatusTooManyRequests
		}
		if code != step.code || w.Code != wantStatus {
			t.Errorf("%s (%s from %s as %q): %d, code %q; want %d, code %q", step.name, step.query, step.remote, step.user,
				w.Code, code, wantStatus, step.code)
		}
	}
}

// Every transport counts an anonymous client's mutations, against the
// rate and the burst alike.
func TestAnonymousMutationLimitOnEveryTransport(t *testing.T) {
	for _, tc := range []struct {
		name string
		// start returns a function that runs a mutation over the
		// transport and returns the first error's code ("" if it ran).
		start func(t *testing.T, r *replica) func(query string) string
	}{
		{"HTTP POST", func(t *testing.T, r *replica) func(string) string {
			return func(query string) string {
				_, _, body := r.graphqlPost("", query, nil, nil)
				return errorCode(body)
			}
		}},
		{"multipart HTTP", func(t *testing.T, r *replica) func(string) string {
			return func(query string) string {
				h := http.Header{"Accept": {"multipart/mixed;subscriptionSpec=1.0, application/json"}}
				_, _, body := r.graphqlPost("", query, nil, h)
				return errorCode(body)
			}
		}},
		{"event stream", func(t *testing.T, r *replica) func(string) string {
			return func(query string) string {
				c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: query})
				if c == nil {
					var out map[string]any
					if err := json.Unmarshal([]byte(body), &out); err != nil {
						t.Fatalf("%s: %d %q", query, status, body)
					}
					return errorCode(out)
				}
				_, errs, _ := c.next().result(t)
				if len(errs) == 0 {
					return ""
				}
				ext, _ := errs[0]["extensions"].(map[string]any)
				code, _ := ext["code"].(string)
				return code
			}
		}},
		{"WebSocket", func(t *testing.T, r *replica) func(string) string {
			c := r.dialTransport("")
			n := 0
			return func(query string) string {
				n++
				id := fmt.Sprint(n)
				c.subscribe("subscribe", id, query, nil)
				switch f := c.next(); f.Type {
				case "next":
					c.expectType("complete")
					return ""
				case "error":
					code, _ := firstError(t, f).Extensions["code"].(string)
					return code
				default:
					t.Fatalf("%s: got %s", query, f.raw)
					return ""
				}
			}
		}},
		{"single connection event stream", func(t *testing.T, r *replica) func(string) string {
			return singleConnectionMutations(t, r, r)
		}},
		{"single connection event stream, relayed from another replica", func(t *testing.T, r *replica) func(string) string {
			// The stream is held by a replica of its own; r relays the
			// operations to it, which counts them by no address ("").
			relay := r.server.sseSingle.relay
			holder := fakeReplicaWith(t, func(o *Options) { slowMutations(o); o.Relay = relay })
			return singleConnectionMutations(t, holder, r)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mutate := tc.start(t, fakeReplicaWith(t, slowMutations))
			for _, step := range []struct{ query, code string }{
				{threeBumps, codeLimitExceeded}, // more than the burst: no wait allows it
				{twoBumps, ""},                  // the burst
				{oneBump, codeRateLimited},      // beyond it
			} {
				if code := mutate(step.query); code != step.code {
					t.Fatalf("anonymous %s: code %q, want %q", step.query, code, step.code)
				}
			}
		})
	}
}

// singleConnectionMutations opens an anonymous single-connection-mode
// stream on holder and returns a function that runs a mutation on it,
// sent to sender, and returns the first error's code ("" if it ran).
func singleConnectionMutations(t *testing.T, holder, sender *replica) func(query string) string {
	token := holder.reserve("")
	st := holder.openSingle(token, "")
	n := 0
	return func(query string) string {
		n++
		id := fmt.Sprint(n)
		if status, body := sender.operation(token, "", id, query, nil); status != http.StatusAccepted {
			t.Fatalf("%s: %d %s, want 202", query, status, body)
		}
		ev := st.expect("next", id)
		st.expect("complete", id)
		var p struct {
			Errors []gqlError `json:"errors"`
		}
		if err := json.Unmarshal(ev.payload, &p); err != nil {
			t.Fatalf("%s: payload %s: %v", query, ev.payload, err)
		}
		if len(p.Errors) == 0 {
			return ""
		}
		code, _ := p.Errors[0].Extensions["code"].(string)
		return code
	}
}

func TestAddressKey(t *testing.T) {
	for _, tc := range []struct{ remote, key string }{
		{"192.0.2.1:8080", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:8080", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:8080", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::7", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:8080", "fe80::/64"},
		{"@", "@"}, // a Unix socket's
		{"", ""},   // a relayed request's
	} {
		if got := addressKey(tc.remote); got != tc.key {
			t.Errorf("addressKey(%q) = %q, want %q", tc.remote, got, tc.key)
		}
	}
}

// The buckets of anonymous addresses are forgotten once refilled, as
// identities' are: memory follows the clients active lately.
func TestIdentityLimiterForgetsRefilledAddresses(t *testing.T) {
	l := newIdentityLimiter(10, 10)
	now := time.Now()
	for i := range 1000 {
		l.allowN(limitKey{anonymous: true, id: addressKey(fmt.Sprintf("198.51.%d.%d:1", i/256, i%256))}, now, 1)
	}
	if n := l.size(); n != 1000 {
		t.Fatalf("%d addresses tracked, want 1000", n)
	}
	l.allowN(limitKey{anonymous: true, id: "late"}, now.Add(2*time.Minute), 1)
	if n := l.size(); n != 1 {
		t.Fatalf("%d addresses tracked after they all refilled, want 1", n)
	}
}
