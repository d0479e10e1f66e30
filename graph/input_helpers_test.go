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
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// inputTestResponse is a GraphQL response with each error's path.
type inputTestResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func (r inputTestResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// inputTestExecutor runs an operation with variables on svc's schema as
// user ("" anonymous), errors presented with their extensions.code as
// Herald's server presents them.
func inputTestExecutor(t *testing.T, svc *chat.Service) func(user, query string, vars map[string]any) inputTestResponse {
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
	return func(user, query string, vars map[string]any) inputTestResponse {
		t.Helper()
		body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/graphql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		if user != "" {
			req = req.WithContext(auth.NewContext(req.Context(), auth.Identity{UserID: user}))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var resp inputTestResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("response %s: %v", rec.Body, err)
		}
		return resp
	}
}
