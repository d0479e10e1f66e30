package server

import (
	"net/http"
	"testing"
)

// TestWebSocketOtherVersionRefusedBeforeOrigin: a handshake of a WebSocket
// version Herald does not speak is refused naming the one it does (400,
// Sec-WebSocket-Version: 13), before its Origin is judged: the origin
// check of /graphql ran first, and refused such a handshake from an origin
// not allowed with 403 and no version, leaving the client to guess what to
// retry with. The exception is for other versions only: a version-13
// handshake, or one naming no version at all, from an origin not allowed
// is still refused with 403, and an origin not allowed is never given CORS
// headers.
func TestWebSocketOtherVersionRefusedBeforeOrigin(t *testing.T) {
	const listed = "https://app.example.com"
	s, _ := newTestServer(t, func(o *Options) { o.AllowedOrigins = []string{listed} })
	v13 := wsHandshake(http.MethodGet)
	v8 := v13.with("Sec-WebSocket-Version", "8")
	noVersion := v13
	noVersion.header = v13.header.Clone()
	noVersion.header.Del("Sec-WebSocket-Version")
	otherVersion := func(allowOrigin string) want {
		return want{status: http.StatusBadRequest, contentType: ctJSON, err: "unsupported version", code: codeBadRequest,
			header: map[string]string{"Sec-WebSocket-Version": "13", "Access-Control-Allow-Origin": allowOrigin}}
	}
	forbidden := want{status: http.StatusForbidden, contentType: ctJSON, err: "is not allowed here", code: "FORBIDDEN",
		header: map[string]string{"Sec-WebSocket-Version": "", "Access-Control-Allow-Origin": ""}}
	cases := []struct {
		name string
		req  request
		want want
	}{
		{"version 8, an origin not allowed", v8.with("Origin", "https://elsewhere.example"), otherVersion("")},
		{"versions 7 and 8, an origin not allowed", v8.with("Sec-WebSocket-Version", "7, 8").with("Origin", "https://elsewhere.example"), otherVersion("")},
		{"version 8, the null origin", v8.with("Origin", "null"), otherVersion("")},
		{"version 8, a listed origin", v8.with("Origin", listed), otherVersion(listed)},
		{"version 13, an origin not allowed", v13.with("Origin", "https://elsewhere.example"), forbidden},
		{"no version, an origin not allowed", noVersion.with("Origin", "https://elsewhere.example"), forbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, send(t, s, tc.req), tc.want)
		})
	}
}
