package graphiql

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
)

// pageFiles are the embedded files the page must load, by the base name of
// their URL.
func pageFiles() map[string]string {
	return map[string]string{
		"graphiql.min.css":            "static/vendor/graphiql/graphiql.min.css",
		"page.css":                    "static/page.css",
		"react.production.min.js":     "static/vendor/react/react.production.min.js",
		"react-dom.production.min.js": "static/vendor/react-dom/react-dom.production.min.js",
		"graphiql.min.js":             "static/vendor/graphiql/graphiql.min.js",
		"start.js":                    "static/start.js",
	}
}

func herald() http.Handler {
	return Handler(Options{Title: "Herald", Endpoint: "/graphql", AssetsPath: "/graphiql/"})
}

func get(t *testing.T, h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func embedded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := static.ReadFile(name)
	if err != nil {
		t.Fatalf("read embedded %s: %v", name, err)
	}
	return b
}

// references returns the src and href attributes of the page, in order,
// but for the empty data: icon that spares browsers asking for
// /favicon.ico.
func references(page string) []string {
	var refs []string
	for _, m := range regexp.MustCompile(`\b(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if m[0] != `href="data:,"` {
			refs = append(refs, m[1])
		}
	}
	return refs
}

// resolve is ref, a URL the page at base names, as the browser resolves
// it: an absolute path.
func resolve(t *testing.T, base, ref string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %q: %v", base, err)
	}
	r, err := url.Parse(ref)
	if err != nil {
		t.Fatalf("parse %q: %v", ref, err)
	}
	return b.ResolveReference(r).RequestURI()
}

// styleNonce returns the page's data-style-nonce.
func styleNonce(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`data-style-nonce="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("page has no data-style-nonce")
	}
	return m[1]
}

func TestPage(t *testing.T) {
	h := herald()
	w := get(t, h, http.MethodGet, "http://herald.example:8080/", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", w.Code)
	}
	nonce := styleNonce(t, w.Body.String())
	for k, v := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": contentSecurityPolicy("herald.example:8080", nonce),
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"ETag":                    "",
	} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	page := w.Body.String()
	for _, s := range []string{"<title>Herald</title>", `data-endpoint="./graphql"`} {
		if !strings.Contains(page, s) {
			t.Errorf("page lacks %s", s)
		}
	}
	checkNoInline(t, page)
	checkNoURLs(t, "page", page)
	checkNoURLs(t, "start.js", string(embedded(t, "static/start.js")))
	// A nonce is unguessable only if it is random and used once.
	if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(nonce) {
		t.Errorf("style nonce %q is not 26 base32 characters (128 bits)", nonce)
	}
	if again := styleNonce(t, get(t, h, http.MethodGet, "/", nil).Body.String()); again == nonce {
		t.Errorf("two responses share the style nonce %q", nonce)
	}
}

// checkNoInline fails if page has what a policy without 'unsafe-inline'
// blocks: a script with a body, a <style> element, a style attribute or an
// event handler attribute.
func checkNoInline(t *testing.T, page string) {
	t.Helper()
	for _, m := range regexp.MustCompile(`(?s)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline script: %s", m[0])
		}
	}
	for _, re := range []string{`<style\b`, `\sstyle=`, `\son[a-z]+=`} {
		if loc := regexp.MustCompile(re).FindStringIndex(page); loc != nil {
			t.Errorf("inline style or handler at %q", page[loc[0]:min(loc[1]+40, len(page))])
		}
	}
}

// checkNoURLs fails if text names an absolute URL (http://, wss:// and the
// like): everything the page loads must come from its own origin, by path.
func checkNoURLs(t *testing.T, what, text string) {
	t.Helper()
	if m := regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"')]*`).FindAllString(text, -1); m != nil {
		t.Errorf("%s names absolute URLs %q; want same-origin paths only", what, m)
	}
}

func TestAssets(t *testing.T) {
	h := herald()
	page := get(t, h, http.MethodGet, "/", nil).Body.String()
	refs, files := references(page), pageFiles()
	if len(refs) != len(files) {
		t.Errorf("page refers to %d files %q, want the %d in pageFiles", len(refs), refs, len(files))
	}
	for _, ref := range refs {
		t.Run(path.Base(ref), func(t *testing.T) {
			file, ok := files[path.Base(ref)]
			if !ok {
				t.Fatalf("page refers to unexpected %s", ref)
			}
			want := embedded(t, file)
			sum := sha256.Sum256(want)
			if wantRef := "./graphiql/" + hex.EncodeToString(sum[:])[:16] + "/" + path.Base(file); ref != wantRef {
				t.Errorf("URL = %s, want %s (relative to the page, assets path, content hash, name)", ref, wantRef)
			}
			w := get(t, h, http.MethodGet, resolve(t, "/", ref), nil)
			if w.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200", w.Code)
			}
			for k, v := range map[string]string{
				"Content-Type":           contentTypeOf(file),
				"Cache-Control":          "public, max-age=31536000, immutable",
				"ETag":                   `"` + hex.EncodeToString(sum[:]) + `"`,
				"X-Content-Type-Options": "nosniff",
			} {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if len(want) == 0 || !bytes.Equal(w.Body.Bytes(), want) {
				t.Errorf("body (%d bytes) is not the embedded %s (%d bytes)", w.Body.Len(), file, len(want))
			}
		})
	}
}

func TestContentTypes(t *testing.T) {
	for name, want := range map[string]string{
		"a.js":        "text/javascript; charset=utf-8",
		"a.min.css":   "text/css; charset=utf-8",
		"LICENSE":     "",
		"update.sh":   "",
		"README.md":   "",
		"page.html":   "",
		"favicon.ico": "",
	} {
		if got := contentTypeOf(name); got != want {
			t.Errorf("contentTypeOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestStartUpConfiguresSubscriptions(t *testing.T) {
	js := string(embedded(t, "static/start.js"))
	// The endpoint comes from the page, is resolved against the page's own
	// URL, and its ws:/wss: twin is GraphiQL's subscription URL.
	for _, s := range []string{
		"root.dataset.endpoint",
		"document.baseURI",
		`endpoint.protocol === 'https:' ? 'wss:' : 'ws:'`,
		"subscriptionUrl: subscriptionUrl.href",
		"GraphiQL.createFetcher(",
		"getElementById('graphiql')",
		"window.__webpack_nonce__ = root.dataset.styleNonce",
	} {
		if !strings.Contains(js, s) {
			t.Errorf("start.js lacks %s", s)
		}
	}
	page := string(embedded(t, "static/page.html"))
	if !strings.Contains(page, `id="graphiql" data-endpoint="{{.Endpoint}}" data-style-nonce="{{.StyleNonce}}"`) {
		t.Errorf("page.html has no #graphiql element with the data attributes start.js reads")
	}
	// The style nonce works only while GraphiQL's bundle reads that global.
	if !bytes.Contains(embedded(t, "static/vendor/graphiql/graphiql.min.js"), []byte(`typeof __webpack_nonce__`)) {
		t.Errorf("graphiql.min.js no longer reads __webpack_nonce__; its injected style would be blocked")
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := herald()
	js := resolve(t, "/", references(get(t, h, http.MethodGet, "/", nil).Body.String())[2])
	hash := strings.Split(js, "/")[2]
	custom := Handler(Options{NotFound: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})})
	cases := []struct {
		name, method, target string
		h                    http.Handler
		status               int
	}{
		{"asset", http.MethodGet, js, h, 200},
		{"asset HEAD", http.MethodHead, js, h, 200},
		{"asset directory", http.MethodGet, "/graphiql/", h, 404},
		{"asset without hash", http.MethodGet, "/graphiql/react.production.min.js", h, 404},
		{"asset with another hash", http.MethodGet, "/graphiql/0123456789abcdef/react.production.min.js", h, 404},
		{"file not loaded by the page", http.MethodGet, "/graphiql/" + hash + "/LICENSE", h, 404},
		{"template", http.MethodGet, "/graphiql/" + hash + "/page.html", h, 404},
		{"unknown asset, custom NotFound", http.MethodGet, "/graphiql/nope.js", custom, http.StatusTeapot},
		{"page POST", http.MethodPost, "/", h, 405},
		{"asset POST", http.MethodPost, js, h, 405},
		{"asset DELETE", http.MethodDelete, js, h, 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, tc.h, tc.method, tc.target, nil)
			if w.Code != tc.status {
				t.Errorf("%s %s: status = %d, want %d", tc.method, tc.target, w.Code, tc.status)
			}
			if tc.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q, want GET, HEAD", w.Header().Get("Allow"))
			}
			if tc.method == http.MethodHead && w.Body.Len() != 0 {
				t.Errorf("HEAD answered with a %d-byte body", w.Body.Len())
			}
		})
	}
}

func TestConditionalRequests(t *testing.T) {
	h := herald()
	target := resolve(t, "/", references(get(t, h, http.MethodGet, "/", nil).Body.String())[0])
	etag := get(t, h, http.MethodGet, target, nil).Header().Get("ETag")
	w := get(t, h, http.MethodGet, target, http.Header{"If-None-Match": {etag}})
	if etag == "" || w.Code != http.StatusNotModified {
		t.Errorf("%s: ETag %q, then If-None-Match status = %d, want 304", target, etag, w.Code)
	}
}

func TestContentSecurityPolicy(t *testing.T) {
	const rest = "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-N0NCE'; style-src-attr 'unsafe-hashes' " + jumpToLineStyles + "; font-src 'self' data:; " +
		"img-src 'self' data:; connect-src %s; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	cases := []struct{ host, connect string }{
		{"localhost:8080", "'self' ws://localhost:8080 wss://localhost:8080"},
		{"chat.example.com", "'self' ws://chat.example.com wss://chat.example.com"},
		{"127.0.0.1:8080", "'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"},
		{"[::1]:8080", "'self'"},
		{"", "'self'"},
		{"example.com:", "'self'"},
		{"example.com:80a", "'self'"},
		{":8080", "'self'"},
		{"evil.example; script-src *", "'self'"},
		{"evil.example 'unsafe-inline'", "'self'"},
		{"a.example:1:2", "'self'"},
	}
	for _, tc := range cases {
		want := strings.Replace(rest, "%s", tc.connect, 1)
		if got := contentSecurityPolicy(tc.host, "N0NCE"); got != want {
			t.Errorf("host %q:\n got %s\nwant %s", tc.host, got, want)
		}
	}
}

func TestOptions(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		w := get(t, Handler(Options{}), http.MethodGet, "/", nil)
		page := w.Body.String()
		for _, s := range []string{"<title>GraphiQL</title>", `data-endpoint="./graphql"`, `src="./graphiql/`} {
			if !strings.Contains(page, s) {
				t.Errorf("default page lacks %s", s)
			}
		}
	})
	t.Run("custom", func(t *testing.T) {
		h := Handler(Options{Title: `<Herald & "co">`, Endpoint: "/api/graphql", AssetsPath: "/ide/assets/"})
		page := get(t, h, http.MethodGet, "/ide/", nil).Body.String()
		for _, s := range []string{"<title>&lt;Herald &amp; &#34;co&#34;&gt;</title>", `data-endpoint="../api/graphql"`} {
			if !strings.Contains(page, s) {
				t.Errorf("page lacks %s", s)
			}
		}
		for _, ref := range references(page) {
			if abs := resolve(t, "/ide/", ref); !strings.HasPrefix(abs, "/ide/assets/") || get(t, h, http.MethodGet, abs, nil).Code != 200 {
				t.Errorf("asset %s (%s from /ide/) is not served under /ide/assets/", ref, abs)
			}
		}
	})
	invalid := []Options{
		{Endpoint: "graphql"},
		{Endpoint: "https://elsewhere.example/graphql"},
		{Endpoint: "//elsewhere.example/graphql"},
		// A browser reads \ as / and drops tabs and line breaks: each is
		// //elsewhere.example/graphql.
		{Endpoint: "/\\elsewhere.example/graphql"},
		{Endpoint: "/\t/elsewhere.example/graphql"},
		{Endpoint: "/\n/elsewhere.example/graphql"},
		{AssetsPath: "/"},
		{AssetsPath: "graphiql/"},
		{AssetsPath: "/graphiql"},
	}
	for _, o := range invalid {
		if _, err := newHandler(o); err == nil {
			t.Errorf("newHandler(%+v) = nil error, want one", o)
		}
	}
	defer func() {
		if recover() == nil {
			t.Errorf("Handler with an invalid Options did not panic")
		}
	}()
	Handler(invalid[0])
}

// TestVendoredFilesMatchVERSIONS keeps static/vendor/VERSIONS true: every
// vendored script and stylesheet is listed with its SHA-256, and every
// package has its LICENSE beside it.
func TestVendoredFilesMatchVERSIONS(t *testing.T) {
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(embedded(t, "static/vendor/VERSIONS")))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Errorf("VERSIONS line %q: want file, package, version, sha256", line)
			continue
		}
		file, pkg, sum := f[0], f[1], f[3]
		got := sha256.Sum256(embedded(t, "static/vendor/"+file))
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: sha256 %x, VERSIONS says %s", file, got, sum)
		}
		if len(embedded(t, "static/vendor/"+pkg+"/LICENSE")) == 0 {
			t.Errorf("%s: empty LICENSE", pkg)
		}
		listed[file] = true
	}
	err := fs.WalkDir(static, "static/vendor", func(p string, d fs.DirEntry, err error) error {
		if err == nil && contentTypeOf(p) != "" && !listed[strings.TrimPrefix(p, "static/vendor/")] {
			t.Errorf("%s is not in VERSIONS", p)
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk static/vendor: %v", err)
	}
}
