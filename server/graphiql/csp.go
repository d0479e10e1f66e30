package graphiql

import "strings"

// contentSecurityPolicy is the page's policy when it was requested with
// Host header host and carries style nonce nonce. Scripts and styles come
// only from the page's origin (there are none inline); fonts and images
// may also be data: URLs, which GraphiQL's stylesheet uses for its fonts
// and icons. The page may connect to its own origin, for queries over HTTP
// and subscriptions over WebSocket.
//
// The nonce is for the one <style> element GraphiQL adds while a dialog is
// open (react-remove-scroll's scroll lock, which takes the nonce from the
// global __webpack_nonce__ that start.js sets). Without it that element is
// blocked and each dialog logs a violation, though it still works.
//
// CSP Level 3 lets 'self' match ws: and wss: on the page's host, but older
// browsers (Chrome before 71, Safari before 16) do not, so connect-src also
// names ws://host and wss://host. host is the request's Host as the client
// sent it: behind a proxy that rewrites Host (nginx's "proxy_set_header
// Host $host" drops the port) those two sources name another port, and
// only 'self' covers the socket. A Host that is not a plain host[:port] is
// left out rather than pasted into the policy, where it could add sources
// or directives.
func contentSecurityPolicy(host, nonce string) string {
	connect := "'self'"
	if isPlainHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		"font-src 'self' data:",
		"img-src 'self' data:",
		"connect-src " + connect,
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}

// isPlainHost reports whether host is a DNS name or IPv4 address with an
// optional port: the only hosts a CSP host-source can name (it has no
// syntax for IPv6 literals).
func isPlainHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	name, port, hasPort := strings.Cut(host, ":")
	if name == "" || hasPort && (port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "") {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
