package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// gqlResponse is a GraphQL response as a client reads it.
type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// code is the first error's extensions.code, "" without errors.
func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// executor runs queries and mutations on svc's schema over POST, as user
// ("" for anonymous). Errors carry their extensions.code, as Herald's
// server presents them.
func executor(t *testing.T, svc *chat.Service) func(user, query string) gqlResponse {
	t.Helper()
	do := executorWithVars(t, svc)
	return func(user, query string) gqlResponse {
		t.Helper()
		return do(user, query, nil)
	}
}

// executorWithVars is executor for operations with variables.
func executorWithVars(t *testing.T, svc *chat.Service) func(user, query string, vars map[string]any) gqlResponse {
	t.Helper()
	h := handler.New(NewSchema(svc, time.Unix(0, 1), nil))
	h.AddTransport(transport.POST{})
	h.SetErrorPresenter(func(ctx context.Context, err error) *gqlerror.Error {
		presented := graphql.DefaultErrorPresenter(ctx, err)
		if chatErr, ok := errors.AsType[*chat.Error](err); ok && presented != nil {
			presented.Extensions = chatErr.Extensions()
		}
		return presented
	})
	return func(user, query string, vars map[string]any) gqlResponse {
		t.Helper()
		body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("POST", "/graphql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req = req.WithContext(auth.NewContext(req.Context(), auth.Identity{UserID: user}))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp gqlResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("response %s: %v", rec.Body, err)
		}
		return resp
	}
}

// TestRoomContentNeedsMembership: a private room reached by a query or
// mutation shows its content (messages, members, counters) to members
// only. A member who removes themselves gets the room back from
// removeMember, but not what it holds: they are no longer a member when
// its fields are read.
func TestRoomContentNeedsMembership(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	const content = `id messageCount lastMessageAt members { totalCount nodes { id } } messages { totalCount nodes { text } }`
	tests := []struct {
		name   string
		user   string
		query  func(roomID string) string
		path   string
		hidden bool
	}{
		{name: "a member removing themselves", user: "bob", hidden: true, path: "removeMember",
			query: func(roomID string) string {
				return `mutation { removeMember(roomId: "` + roomID + `", userId: "bob") { ` + content + ` } }`
			}},
		{name: "a member removing another", user: "alice", path: "removeMember",
			query: func(roomID string) string {
				return `mutation { removeMember(roomId: "` + roomID + `", userId: "bob") { ` + content + ` } }`
			}},
		{name: "a member reading", user: "bob", path: "room",
			query: func(roomID string) string { return `{ room(id: "` + roomID + `") { ` + content + ` } }` }},
	}
	do := executor(t, svc)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			room, err := svc.CreatePrivateRoom(ctx, alice, "secret")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PostMessage(ctx, alice, room.ID, "the secret text", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddMember(ctx, alice, room.ID, "bob"); err != nil {
				t.Fatal(err)
			}
			resp := do(tt.user, tt.query(room.ID))
			if len(resp.Errors) > 0 {
				t.Fatalf("errors: %+v", resp.Errors)
			}
			var data map[string]struct {
				ID            string
				MessageCount  int
				LastMessageAt *string
				Members       struct{ TotalCount int }
				Messages      struct {
					TotalCount int
					Nodes      []struct{ Text string }
				}
			}
			if err := json.Unmarshal(resp.Data, &data); err != nil {
				t.Fatal(err)
			}
			got := data[tt.path]
			if got.ID != room.ID {
				t.Fatalf("room %q, want %q", got.ID, room.ID)
			}
			shown := got.MessageCount > 0 || got.LastMessageAt != nil || got.Members.TotalCount > 0 ||
				got.Messages.TotalCount > 0 || len(got.Messages.Nodes) > 0
			if shown == tt.hidden {
				t.Errorf("content %s, want it hidden: %v", resp.Data, tt.hidden)
			}
		})
	}
}

// TestInSubscription: the room's content is checked against the viewer in
// queries and mutations only; a subscription's is left to the engine's
// gate, as the identity on its context is one of many subscribers.
func TestInSubscription(t *testing.T) {
	for _, tt := range []struct {
		op   ast.Operation
		want bool
	}{{ast.Query, false}, {ast.Mutation, false}, {ast.Subscription, true}} {
		ctx := graphql.WithOperationContext(context.Background(),
			&graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: tt.op}})
		if got := inSubscription(ctx); got != tt.want {
			t.Errorf("inSubscription in a %s = %v, want %v", tt.op, got, tt.want)
		}
	}
	if inSubscription(context.Background()) {
		t.Error("inSubscription without an operation = true, want false")
	}
}
