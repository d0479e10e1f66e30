package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// crashGQL posts a GraphQL request as user, bounded to 10 s; err is a
// transport failure (no answer: the process may be killed under it), the
// response is what the server said.
func crashGQL(addr, user, query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("X-Herald-User", user)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	var r gqlResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		return gqlResponse{}, fmt.Errorf("decode %q: %w", raw, err)
	}
	return r, nil
}

// crashEvent is one roomEvents event as a subscriber saw it.
type crashEvent struct {
	Kind    string
	ID      string
	Version int
	Text    string
	Cursor  string
}

func (e crashEvent) String() string {
	return fmt.Sprintf("%s %s v%d %q", e.Kind, e.ID, e.Version, e.Text)
}

// crashSubscriber is a graphql-transport-ws socket with one roomEvents
// subscription.
type crashSubscriber struct {
	t    *testing.T
	conn *websocket.Conn
}

// subscribeRoomEvents opens roomEvents(room, after) as user and waits
// until the subscription is registered.
func subscribeRoomEvents(t *testing.T, addr, user, room, after string) *crashSubscriber {
	t.Helper()
	conn := dialTransportWS(t, addr)
	s := &crashSubscriber{t: t, conn: conn}
	s.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}})
	if typ, _, err := s.next(10 * time.Second); err != nil || typ != "connection_ack" {
		t.Fatalf("got %q (%v), want connection_ack", typ, err)
	}
	vars := map[string]any{"r": room}
	if after != "" {
		vars["a"] = after
	}
	s.send(map[string]any{"id": "sub", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($r: ID!, $a: String) { roomEvents(roomId: $r, after: $a) { kind cursor message { id version text } } }`,
		"variables": vars,
	}})
	return s
}

func (s *crashSubscriber) send(v any) {
	data, _ := json.Marshal(v)
	_ = s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		s.t.Errorf("write to the subscriber socket: %v", err)
	}
}

// next returns the next frame's type and, for a next, its event; pings
// are answered and skipped.
func (s *crashSubscriber) next(within time.Duration) (string, *crashEvent, error) {
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(within))
		var f struct {
			ID, Type string
			Payload  json.RawMessage
		}
		if err := s.conn.ReadJSON(&f); err != nil {
			return "", nil, err
		}
		switch f.Type {
		case "ping":
			s.send(map[string]any{"type": "pong"})
			continue
		case "next":
			var p struct {
				Data struct {
					RoomEvents struct {
						Kind, Cursor string
						Message      struct {
							ID      string
							Version int
							Text    string
						}
					}
				}
				Errors []gqlError
			}
			_ = json.Unmarshal(f.Payload, &p)
			if len(p.Errors) > 0 {
				return "next", nil, fmt.Errorf("error event: %+v", p.Errors)
			}
			re := p.Data.RoomEvents
			return "next", &crashEvent{Kind: re.Kind, ID: re.Message.ID, Version: re.Message.Version, Text: re.Message.Text, Cursor: re.Cursor}, nil
		case "connection_ack":
			return f.Type, nil, nil
		default:
			return f.Type, nil, fmt.Errorf("frame %s: %s", f.Type, f.Payload)
		}
	}
}

// collect reads events until none comes for quiet (or the socket ends),
// at most max of them and at most within overall.
func (s *crashSubscriber) collect(quiet, within time.Duration, max int) ([]crashEvent, error) {
	var evs []crashEvent
	deadline := time.Now().Add(within)
	for len(evs) < max && time.Now().Before(deadline) {
		typ, ev, err := s.next(quiet)
		if ev != nil {
			evs = append(evs, *ev)
			continue
		}
		if err != nil {
			if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				return evs, nil
			}
			return evs, fmt.Errorf("%s: %w", typ, err)
		}
	}
	return evs, nil
}

// decodeInto decodes a response's data into out.
func decodeInto(r gqlResponse, out any) error {
	if len(r.Data) == 0 || string(r.Data) == "null" {
		return fmt.Errorf("no data")
	}
	return json.Unmarshal(r.Data, out)
}
