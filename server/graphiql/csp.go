package graphiql

import "strings"

// contentSecurityPolicy is the page's policy when it was requested with
// Host header host and carries style nonce nonce. Scripts and styles come
// only from the page's origin (there are none inline); fonts and images
// may also be data: URLs, which GraphiQL's stylesheet uses for its fonts
// and icons. The page may connect to its own origin, for queries over HTTP
// and subscriptions over WebSocket. None of the sources names a path: the
// page's URLs are relative to it, and under whatever path prefix a proxy
// serves it they resolve to its own origin, which 'self' and the ws:/wss:
// host-sources match at any path.
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
// jumpToLineStyles are the hashes of the style attributes CodeMirror's
// jump-to-line dialog sets through innerHTML (static/vendor, graphiql's
// bundle): "width: 10em" and "color: #888".
const jumpToLineStyles = "'sha256-H22cvujYHDQPJvzf4ie16OHKC3HsNj7RmRT3jO07Y/U=' 'sha256-Eaamrrh0b5a/naRsV/zg7s6+kGvexMXZQARWP6ukkg4='"

func contentSecurityPolicy(host, nonce string) string {
	connect := "'self'"
	if isPlainHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'nonce-" + nonce + "'",
		// The two style attributes of CodeMirror's jump-to-line dialog
		// (Alt-G in an editor), "width: 10em" and "color: #888", by hash.
		"style-src-attr 'unsafe-hashes' " + jumpToLineStyles,
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
