package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The transport matrix: one operation, sent over every transport that can
// carry it, and the GraphQL-level answers compared.

// mxOp is one operation of the matrix.
type mxOp struct {
	name          string
	query         string
	vars          map[string]any
	operationName string
	extensions    map[string]any
	user          string
	// take is how many results to read before stopping a subscription
	// that runs on (0: read until the operation ends).
	take int
}

// mxOutcome is what one transport answered.
type mxOutcome struct {
	transport string
	status    int      // HTTP status of a plain answer or of the refused stream request; 0 on a socket/stream
	results   []string // each GraphQL result, normalized
	end       string   // how it ended: complete, error, close <code>, json, stopped
	note      string   // anything else worth printing
}

func (o mxOutcome) String() string {
	return fmt.Sprintf("%-10s status=%d end=%q results=%v %s", o.transport, o.status, o.end, o.results, o.note)
}

// mxNorm re-encodes a GraphQL result with sorted keys, dropping nothing.
func mxNorm(raw []byte) string {
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "NOT JSON: " + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func mxBody(op mxOp) map[string]any {
	b := map[string]any{"query": op.query}
	if op.vars != nil {
		b["variables"] = op.vars
	}
	if op.operationName != "" {
		b["operationName"] = op.operationName
	}
	if op.extensions != nil {
		b["extensions"] = op.extensions
	}
	return b
}

func mxHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// mxPost: a plain POST, Accept application/json.
func (r *replica) mxPost(op mxOp) mxOutcome {
	b, _ := json.Marshal(mxBody(op))
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	return r.mxPlain("post", req)
}

// mxGet: a plain GET.
func (r *replica) mxGet(op mxOp) mxOutcome {
	req, _ := http.NewRequest(http.MethodGet, r.http.URL+"/graphql?"+mxQuery(op), nil)
	req.Header.Set("Accept", "application/json")
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	return r.mxPlain("get", req)
}

func mxQuery(op mxOp) string {
	q := url.Values{}
	if op.query != "" {
		q.Set("query", op.query)
	}
	if op.vars != nil {
		v, _ := json.Marshal(op.vars)
		q.Set("variables", string(v))
	}
	if op.operationName != "" {
		q.Set("operationName", op.operationName)
	}
	if op.extensions != nil {
		v, _ := json.Marshal(op.extensions)
		q.Set("extensions", string(v))
	}
	return q.Encode()
}

func (r *replica) mxPlain(name string, req *http.Request) mxOutcome {
	resp, err := mxHTTPClient(r.t).Do(req)
	if err != nil {
		return mxOutcome{transport: name, end: "transport error: " + err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return mxOutcome{transport: name, status: resp.StatusCode, results: []string{mxNorm(b)}, end: "json"}
}

// mxWS runs op on a graphql-transport-ws (legacy false) or legacy
// graphql-ws socket.
func (r *replica) mxWS(op mxOp, legacy bool) mxOutcome {
	name, start, next := "ws", "subscribe", "next"
	var c *wsClient
	if legacy {
		name, start, next = "legacy", "start", "data"
		c = r.dialLegacy(op.user)
	} else {
		c = r.dialTransport(op.user)
	}
	defer c.conn.Close()
	c.send(map[string]any{"id": "1", "type": start, "payload": mxBody(op)})
	out := mxOutcome{transport: name}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				out.end = fmt.Sprintf("close %d %s", ce.Code, ce.Text)
			} else {
				out.end = "read: " + err.Error()
			}
			return out
		}
		if f.keepalive() {
			continue
		}
		if f.ID != "1" {
			out.note += " frame:" + f.raw
			continue
		}
		switch f.Type {
		case next:
			out.results = append(out.results, mxNorm(f.Payload))
			if op.take > 0 && len(out.results) >= op.take {
				out.end = "stopped"
				return out
			}
		case "error":
			// graphql-transport-ws: an array of errors; legacy: whatever it sends.
			var arr []json.RawMessage
			if json.Unmarshal(f.Payload, &arr) == nil {
				out.results = append(out.results, mxNorm([]byte(`{"errors":`+string(f.Payload)+`}`)))
			} else {
				out.results = append(out.results, "ERRPAYLOAD "+mxNorm(f.Payload))
			}
			out.end = "error"
			return out
		case "complete":
			out.end = "complete"
			return out
		default:
			out.note += " frame:" + f.raw
		}
	}
	out.end = "timeout"
	return out
}

// mxSSE runs op over a distinct-connections event stream (POST).
func (r *replica) mxSSE(op mxOp) mxOutcome {
	b, _ := json.Marshal(mxBody(op))
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	return r.mxSSEDo("sse", req, op)
}

// mxSSEGet runs op over a distinct-connections event stream (GET).
func (r *replica) mxSSEGet(op mxOp) mxOutcome {
	req, _ := http.NewRequest(http.MethodGet, r.http.URL+"/graphql?"+mxQuery(op), nil)
	req.Header.Set("Accept", "text/event-stream")
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	return r.mxSSEDo("sse-get", req, op)
}

func (r *replica) mxSSEDo(name string, req *http.Request, op mxOp) mxOutcome {
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return mxOutcome{transport: name, end: "transport error: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		return mxOutcome{transport: name, status: resp.StatusCode, results: []string{mxNorm(b)}, end: "json"}
	}
	c := &sseClient{t: r.t, resp: resp, events: make(chan sseEvent, 256), ended: make(chan struct{}), start: make(chan struct{})}
	c.resume()
	go c.readLoop()
	defer func() { _ = resp.Body.Close(); <-c.ended }()
	out := mxOutcome{transport: name}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				out.end = fmt.Sprintf("ended without complete (%v)", c.err)
				return out
			}
			if ev.comment {
				continue
			}
			switch ev.event {
			case "next":
				out.results = append(out.results, mxNorm([]byte(ev.data)))
				if op.take > 0 && len(out.results) >= op.take {
					out.end = "stopped"
					return out
				}
			case "complete":
				out.end = "complete"
				return out
			default:
				out.note += fmt.Sprintf(" event:%+v", ev)
			}
		case <-timer.C:
			out.end = "timeout"
			return out
		}
	}
}

// mxSingle runs op on a single-connection-mode stream.
func (r *replica) mxSingle(op mxOp) mxOutcome {
	token := r.reserve(op.user)
	h := http.Header{streamTokenHeader: {token}}
	if op.user != "" {
		h.Set("X-Herald-User", op.user)
	}
	c, status, body := r.openSSE(sseRequest{method: http.MethodGet, header: h})
	if c == nil {
		r.t.Fatalf("open single stream: %d %s", status, body)
	}
	defer func() { _ = c.resp.Body.Close() }()
	b := mxBody(op)
	ext := map[string]any{"operationId": "op1"}
	for k, v := range op.extensions {
		ext[k] = v
	}
	b["extensions"] = ext
	st, rb := r.do(singleReq{method: http.MethodPost, token: token, user: op.user, body: b})
	out := mxOutcome{transport: "single"}
	if st != http.StatusAccepted {
		out.status = st
		out.results = []string{mxNorm([]byte(rb))}
		out.end = "json"
		return out
	}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				out.end = fmt.Sprintf("stream ended (%v)", c.err)
				return out
			}
			if ev.comment {
				continue
			}
			var d struct {
				ID      string          `json:"id"`
				Payload json.RawMessage `json:"payload"`
			}
			if err := json.Unmarshal([]byte(ev.data), &d); err != nil || d.ID != "op1" {
				out.note += fmt.Sprintf(" event:%+v", ev)
				continue
			}
			switch ev.event {
			case "next":
				out.results = append(out.results, mxNorm(d.Payload))
				if op.take > 0 && len(out.results) >= op.take {
					out.end = "stopped"
					return out
				}
			case "complete":
				out.end = "complete"
				return out
			default:
				out.note += fmt.Sprintf(" event:%+v", ev)
			}
		case <-timer.C:
			out.end = "timeout"
			return out
		}
	}
}

// mxMultipart runs op as Apollo Client's HttpLink does for a subscription.
func (r *replica) mxMultipart(op mxOp) mxOutcome {
	b, _ := json.Marshal(mxBody(op))
	req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", acceptApollo4)
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return mxOutcome{transport: "multipart", end: "transport error: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/mixed") {
		b, _ := io.ReadAll(resp.Body)
		return mxOutcome{transport: "multipart", status: resp.StatusCode, results: []string{mxNorm(b)}, end: "json"}
	}
	c := &mpClient{t: r.t, resp: resp, parts: make(chan mpPart, 256), ended: make(chan struct{}), start: make(chan struct{})}
	c.resume()
	go c.readLoop()
	defer func() { _ = resp.Body.Close(); <-c.ended }()
	out := mxOutcome{transport: "multipart"}
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		select {
		case p, ok := <-c.parts:
			if !ok {
				if c.closed {
					out.end = "complete"
				} else {
					out.end = fmt.Sprintf("ended without close delimiter (%v)", c.err)
				}
				return out
			}
			if p.heartbeat {
				continue
			}
			if len(p.errors) > 0 || string(p.payload) == "null" {
				e, _ := json.Marshal(p.errors)
				out.results = append(out.results, mxNorm([]byte(`{"errors":`+string(e)+`}`)))
				out.note += " (transport-error part)"
				continue
			}
			out.results = append(out.results, mxNorm(p.payload))
			if op.take > 0 && len(out.results) >= op.take {
				out.end = "stopped"
				return out
			}
		case <-timer.C:
			out.end = "timeout"
			return out
		}
	}
}

// mxRunAll runs op over the named transports.
func (r *replica) mxRunAll(op mxOp, transports []string) []mxOutcome {
	var outs []mxOutcome
	for _, tr := range transports {
		switch tr {
		case "post":
			outs = append(outs, r.mxPost(op))
		case "get":
			outs = append(outs, r.mxGet(op))
		case "ws":
			outs = append(outs, r.mxWS(op, false))
		case "legacy":
			outs = append(outs, r.mxWS(op, true))
		case "sse":
			outs = append(outs, r.mxSSE(op))
		case "sse-get":
			outs = append(outs, r.mxSSEGet(op))
		case "single":
			outs = append(outs, r.mxSingle(op))
		case "multipart":
			outs = append(outs, r.mxMultipart(op))
		}
	}
	return outs
}

// mxGQL is the GraphQL-level content of a result: data and, per error,
// message, code, path and locations.
func mxGQL(s string) string {
	var v struct {
		Data       json.RawMessage  `json:"data"`
		Errors     []map[string]any `json:"errors"`
		Extensions map[string]any   `json:"extensions"`
	}
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	var b strings.Builder
	if v.Data != nil {
		fmt.Fprintf(&b, "data=%s ", v.Data)
	} else {
		b.WriteString("data=ABSENT ")
	}
	for _, e := range v.Errors {
		ext, _ := e["extensions"].(map[string]any)
		keys := []string{}
		for k := range ext {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p, _ := json.Marshal(e["path"])
		l, _ := json.Marshal(e["locations"])
		fmt.Fprintf(&b, "[msg=%q code=%v path=%s loc=%s extkeys=%v] ", e["message"], ext["code"], p, l, keys)
	}
	if c, ok := v.Extensions["cursor"]; ok {
		fmt.Fprintf(&b, "cursor=%v", c)
	}
	return strings.TrimSpace(b.String())
}
