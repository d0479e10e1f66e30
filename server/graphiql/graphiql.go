// Package graphiql serves GraphiQL, the in-browser GraphQL IDE, with every
// file it needs embedded in the binary: the page loads nothing from another
// host, so it works offline and under a strict Content-Security-Policy.
//
// The page has no inline script or style. It loads React, ReactDOM,
// GraphiQL and a start-up script (static/start.js) from the handler's
// asset path; the start-up script points GraphiQL at the endpoint for
// queries and mutations and at the same URL over ws: or wss: for
// subscriptions (graphql-ws, protocol graphql-transport-ws). The one style
// element GraphiQL adds at run time carries a per-response nonce. The
// vendored files, their versions and licences are listed in
// static/vendor/.
//
// The page names its assets and the endpoint by URLs relative to its own
// (./graphiql/<hash>/start.js, ./graphql), never by absolute paths, so that
// it works unchanged behind a reverse proxy that serves the handler under
// a path prefix and strips the prefix before passing requests on
// (https://example.com/herald/ reaching the handler as /): the browser
// resolves those URLs inside the prefix, where an absolute path would
// leave it.
package graphiql

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"path"
	"strings"
	"time"
)

// static holds the page template, the start-up script and style, and the
// vendored GraphiQL and React builds.
//
//go:embed static
var static embed.FS

// Options configures Handler. Zero fields take the defaults documented on
// each.
type Options struct {
	// Title is the page's title; default "GraphiQL".
	Title string
	// Endpoint is the path of the GraphQL endpoint on the page's own host,
	// for HTTP and WebSocket alike, as this handler's requests see paths;
	// default "/graphql". It must begin with "/": the
	// Content-Security-Policy allows connections to the page's host only.
	// The page names it relative to its own path ("./graphql" from "/",
	// "../graphql" from "/ide/"), so a stripped path prefix is kept.
	Endpoint string
	// AssetsPath is the path under which the handler serves the page's
	// assets; default "/graphiql/". It must begin and end with "/" and not
	// be "/". Route it, and the page's path, to the handler. The page
	// names its assets relative to its own path, as it does Endpoint.
	AssetsPath string
	// NotFound answers requests under AssetsPath for no known asset;
	// default http.NotFound.
	NotFound http.Handler
}

// withDefaults returns a copy of o with zero fields defaulted, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Title == "" {
		o.Title = "GraphiQL"
	}
	if o.Endpoint == "" {
		o.Endpoint = "/graphql"
	}
	if o.AssetsPath == "" {
		o.AssetsPath = "/graphiql/"
	}
	if o.NotFound == nil {
		o.NotFound = http.HandlerFunc(http.NotFound)
	}
	switch {
	case !strings.HasPrefix(o.Endpoint, "/") || strings.HasPrefix(o.Endpoint, "//") ||
		strings.ContainsFunc(o.Endpoint, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }):
		// A browser reads \ as / in an http(s) URL and drops tabs and line
		// breaks: "/\\host" would be "//host", another host.
		return o, fmt.Errorf("Options.Endpoint is %q, must be a path beginning with one /, without \\ or control characters", o.Endpoint)
	case o.AssetsPath == "/" || !strings.HasPrefix(o.AssetsPath, "/") || !strings.HasSuffix(o.AssetsPath, "/"):
		return o, fmt.Errorf("Options.AssetsPath is %q, must begin and end with / and not be /", o.AssetsPath)
	}
	return o, nil
}

// handler serves the page at any path outside opts.AssetsPath and the
// assets under it.
type handler struct {
	opts Options
	page *template.Template
	// urls holds the URL path of each file, by its name under static/,
	// without the leading "/": the page prefixes it with pageData.Root.
	urls   map[string]string
	assets map[string]asset // by URL path
}

// pageData is what static/page.html is executed with.
type pageData struct {
	Title string
	// Root is the relative reference from the page to the root of the
	// paths the handler sees ("./" or one "../" per directory below it),
	// which the page puts before the path of each asset; Endpoint has it
	// already.
	Root, Endpoint string
	// StyleNonce is the response's style-src nonce, for start.js to hand
	// to GraphiQL.
	StyleNonce string
}

// asset is one embedded file and what describes it.
type asset struct {
	body        []byte
	contentType string
	sum         string // hex SHA-256 of body
}

// Handler returns a handler that serves the GraphiQL page for any path not
// under opts.AssetsPath, and the page's assets under it. Mount it at both,
// for example:
//
//	g := graphiql.Handler(graphiql.Options{Title: "Herald"})
//	mux.Handle("GET /{$}", g)
//	mux.Handle("GET /graphiql/", g)
//
// Behind a proxy that strips a path prefix, the browser must reach the
// page at the prefix followed by the path the handler sees
// (https://example.com/herald/ for "/"): the page's relative URLs are
// resolved against the browser's path, and from https://example.com/herald
// they would leave the prefix.
//
// It answers methods other than GET and HEAD with 405. Like
// http.ServeMux.Handle, it panics if opts is invalid, which is a
// programming error.
func Handler(opts Options) http.Handler {
	h, err := newHandler(opts)
	if err != nil {
		panic("graphiql: " + err.Error())
	}
	return h
}

func newHandler(opts Options) (*handler, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &handler{opts: opts, urls: map[string]string{}, assets: map[string]asset{}}
	if err := h.parsePage(); err != nil {
		return nil, fmt.Errorf("prepare the page: %w", err)
	}
	return h, nil
}

// parsePage parses static/page.html into h.page and registers the files it
// names with its asset function, so that exactly the files the page loads
// are served. Registering runs once, on a clone, so that the executions
// per request (one per nonce) only read h.urls.
func (h *handler) parsePage() error {
	src, err := static.ReadFile("static/page.html")
	if err != nil {
		return fmt.Errorf("read page.html: %w", err)
	}
	h.page, err = template.New("page").Funcs(template.FuncMap{"asset": h.assetURL}).Parse(string(src))
	if err != nil {
		return fmt.Errorf("parse page.html: %w", err)
	}
	register, err := h.page.Clone()
	if err != nil {
		return fmt.Errorf("clone page.html: %w", err)
	}
	register.Funcs(template.FuncMap{"asset": h.addAsset})
	if err := register.Execute(io.Discard, pageData{}); err != nil {
		return fmt.Errorf("register the assets of page.html: %w", err)
	}
	// Executing once here escapes the template and finds any error now
	// rather than in a request.
	if err := h.page.Execute(io.Discard, pageData{}); err != nil {
		return fmt.Errorf("execute page.html: %w", err)
	}
	return nil
}

// addAsset registers static/name and returns its URL relative to a page
// that reaches the root by root (see pageData.Root). The path holds a hash
// of the content, so the asset can be cached for good: a new version of a
// file gets a new URL.
func (h *handler) addAsset(root, name string) (string, error) {
	body, err := static.ReadFile("static/" + name)
	if err != nil {
		return "", fmt.Errorf("read asset: %w", err)
	}
	contentType := contentTypeOf(name)
	if contentType == "" {
		return "", fmt.Errorf("asset %s: no content type for its extension", name)
	}
	sum := sha256.Sum256(body)
	a := asset{body: body, contentType: contentType, sum: hex.EncodeToString(sum[:])}
	// 64 bits of the hash tell versions apart; the whole hash is the ETag.
	urlPath := h.opts.AssetsPath + a.sum[:16] + "/" + path.Base(name)
	h.urls[name], h.assets[urlPath] = urlPath[1:], a
	return root + urlPath[1:], nil
}

// assetURL is the URL of static/name, registered by addAsset, relative to
// a page that reaches the root by root.
func (h *handler) assetURL(root, name string) (string, error) {
	rel, ok := h.urls[name]
	if !ok {
		return "", fmt.Errorf("asset %s was not registered", name)
	}
	return root + rel, nil
}

// relativeRoot is the relative reference from a page at escapedPath (the
// path of its URL as the browser sent it) to the root of the handler's
// paths: "./" for a page at "/" (or at "/graphiql"), "../" for one at
// "/ide/" or "/ide/x", one "../" per directory the page is below the root,
// as the browser counts them (an empty segment counts too). Behind a proxy
// that strips a prefix the browser's path is the prefix and then
// escapedPath, so the reference stays inside the prefix. It begins with
// "." so that no asset path can be read as a scheme or a host.
func relativeRoot(escapedPath string) string {
	depth := strings.Count(escapedPath, "/") - 1
	if depth <= 0 {
		return "./"
	}
	return strings.Repeat("../", depth)
}

// contentTypeOf is the Content-Type of an asset by its extension, or ""
// for an extension the page is not expected to load. It does not use
// mime.TypeByExtension, whose answer depends on the host's mime tables.
func contentTypeOf(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	}
	return ""
}

// ServeHTTP serves the page or one of its assets.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if strings.HasPrefix(r.URL.Path, h.opts.AssetsPath) {
		h.serveAsset(w, r)
		return
	}
	h.servePage(w, r)
}

// servePage renders the page with a fresh style nonce, naming the assets
// and the endpoint relative to the page's path. The page is small and not
// cached: it names the assets by hash, so an upgrade's new assets are
// picked up at once, and its nonce must not be reused.
func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	nonce := rand.Text()
	root := relativeRoot(r.URL.EscapedPath())
	var page bytes.Buffer
	err := h.page.Execute(&page, pageData{Title: h.opts.Title, Root: root, Endpoint: root + h.opts.Endpoint[1:], StyleNonce: nonce})
	if err != nil {
		// Only a broken embedded template fails, and the tests execute it.
		http.Error(w, "graphiql: render the page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(r.Host, nonce))
	hdr.Set("Cache-Control", "no-store")
	serve(w, r, page.Bytes(), "text/html; charset=utf-8")
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		h.opts.NotFound.ServeHTTP(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", `"`+a.sum+`"`)
	serve(w, r, a.body, a.contentType)
}

// serve writes body with http.ServeContent, which answers HEAD, ranges and
// conditional requests (on the ETag, if set).
func serve(w http.ResponseWriter, r *http.Request, body []byte, contentType string) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}
