// Package graphiql serves GraphiQL, the in-browser GraphQL IDE, with every
// file it needs embedded in the binary: the page loads nothing from another
// host, so it works offline and under a strict Content-Security-Policy.
//
// The page has no inline script or style. It loads React, ReactDOM,
// GraphiQL and a start-up script (static/start.js) from the handler's
// asset path; the start-up script points GraphiQL at the endpoint for
// queries and mutations and at the same URL over ws: or wss: for
// subscriptions (graphql-ws, protocol graphql-transport-ws). The vendored
// files, their versions and licences are listed in static/vendor/.
package graphiql

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
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
	// for HTTP and WebSocket alike; default "/graphql". It must begin with
	// "/": the Content-Security-Policy allows connections to the page's
	// host only.
	Endpoint string
	// AssetsPath is the path under which the handler serves the page's
	// assets; default "/graphiql/". It must begin and end with "/" and not
	// be "/". Route it, and the page's path, to the handler.
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
	case !strings.HasPrefix(o.Endpoint, "/") || strings.HasPrefix(o.Endpoint, "//"):
		return o, fmt.Errorf("Options.Endpoint is %q, must be a path beginning with one /", o.Endpoint)
	case o.AssetsPath == "/" || !strings.HasPrefix(o.AssetsPath, "/") || !strings.HasSuffix(o.AssetsPath, "/"):
		return o, fmt.Errorf("Options.AssetsPath is %q, must begin and end with / and not be /", o.AssetsPath)
	}
	return o, nil
}

// handler serves the page at any path outside opts.AssetsPath and the
// assets under it.
type handler struct {
	opts   Options
	page   asset
	assets map[string]asset // by URL path; read-only once built
}

// asset is one response body and what describes it.
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
	h := &handler{opts: opts, assets: map[string]asset{}}
	page, err := h.renderPage()
	if err != nil {
		return nil, fmt.Errorf("render the page: %w", err)
	}
	h.page = newAsset(page, "text/html; charset=utf-8")
	return h, nil
}

// renderPage executes static/page.html. Its asset function adds each file
// the page refers to to h.assets, so exactly the files the page loads are
// served.
func (h *handler) renderPage() ([]byte, error) {
	src, err := static.ReadFile("static/page.html")
	if err != nil {
		return nil, fmt.Errorf("read page.html: %w", err)
	}
	tmpl, err := template.New("page").Funcs(template.FuncMap{"asset": h.addAsset}).Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parse page.html: %w", err)
	}
	var buf bytes.Buffer
	data := struct{ Title, Endpoint string }{h.opts.Title, h.opts.Endpoint}
	if err := tmpl.Execute(&buf, data); err != nil {
		return nil, fmt.Errorf("execute page.html: %w", err)
	}
	return buf.Bytes(), nil
}

// addAsset registers static/name and returns its URL. The URL holds a hash
// of the content, so the asset can be cached for good: a new version of a
// file gets a new URL.
func (h *handler) addAsset(name string) (string, error) {
	body, err := static.ReadFile("static/" + name)
	if err != nil {
		return "", fmt.Errorf("read asset: %w", err)
	}
	contentType := contentTypeOf(name)
	if contentType == "" {
		return "", fmt.Errorf("asset %s: no content type for its extension", name)
	}
	a := newAsset(body, contentType)
	// 64 bits of the hash tell versions apart; the whole hash is the ETag.
	urlPath := h.opts.AssetsPath + a.sum[:16] + "/" + path.Base(name)
	h.assets[urlPath] = a
	return urlPath, nil
}

func newAsset(body []byte, contentType string) asset {
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, sum: hex.EncodeToString(sum[:])}
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
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy(r.Host))
	// The page is small and names the assets by hash: revalidate it every
	// time so that an upgrade's new assets are picked up at once.
	hdr.Set("Cache-Control", "no-cache")
	serve(w, r, h.page)
}

func (h *handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		h.opts.NotFound.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	serve(w, r, a)
}

// serve writes a with http.ServeContent, which answers HEAD, conditional
// requests (the ETag) and ranges.
func serve(w http.ResponseWriter, r *http.Request, a asset) {
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("ETag", `"`+a.sum+`"`)
	hdr.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
