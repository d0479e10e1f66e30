package server

// Fuzz targets for client-input parsers that had none: Accept
// negotiation (against the q-value rules), surrogate.LoneInJSON / decodeJSON
// (against a reference JSON string walker), origin policy parsing and
// matching, judgeNumber (against math/big) and stream tokens.

import (
	"encoding/json"
	"math"
	"math/big"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/surrogate"
)

// fzRef is a reference reading of Accept: every element that
// mime.ParseMediaType reads and whose q is a real number in [0, 1] (RFC
// 9110 §12.4.2: "qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )",
// read leniently as any number text in that range) counts; an element
// whose q is anything else is ignored, as if it were absent.
func fzRef(values []string) (m mediaType, ok bool) {
	q := map[string]float64{}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			w := 1.0
			if s, has := params["q"]; has && s != "" {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
					continue
				}
				w = f
			}
			if old, seen := q[mt]; !seen || w > old {
				q[mt] = w
			}
		}
	}
	jsonQ, jsonSet := 0.0, false
	for _, r := range []string{"application/json", "application/*", "*/*"} {
		if v, seen := q[r]; seen {
			jsonQ, jsonSet = v, true
			break
		}
	}
	if g, seen := q[string(mediaGraphQLResponse)]; seen && g > 0 && g >= jsonQ {
		return mediaGraphQLResponse, true
	}
	if jsonSet && jsonQ > 0 {
		return mediaJSON, true
	}
	for _, r := range []string{string(mediaGraphQLResponse), "application/*", "*/*"} {
		if v, seen := q[r]; seen {
			if v > 0 {
				return mediaGraphQLResponse, true
			}
			break
		}
	}
	return "", false
}

func FuzzAccept(f *testing.F) {
	for _, s := range []string{
		"application/json",
		"application/graphql-response+json, application/json;q=0.9",
		"application/json;q=0, */*",
		"application/*;q=0.5, application/graphql-response+json;q=0.5",
		"text/event-stream, application/json;q=0.5",
		"application/json;q=0.5, application/json;q=0.7",
		"application/json;q=1.5",
		"application/json;q=-0",
		"*/*;q=0.001",
		`application/json;a="x,y"`,
	} {
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		var values []string
		for _, v := range []string{a, b} {
			if v != "" && !strings.ContainsAny(v, "\r\n") {
				r.Header.Add("Accept", v)
				values = append(values, v)
			}
		}
		m, ok := negotiate(r)
		if !hasAccept(r) {
			if m != mediaJSON || !ok {
				t.Fatalf("no Accept: negotiate = %q, %v", m, ok)
			}
			return
		}
		want, wantOK := fzRef(values)
		if m != want || ok != wantOK {
			t.Fatalf("Accept %q: negotiate = %q, %v; the q-value rules give %q, %v", values, m, ok, want, wantOK)
		}
		if fm := fallbackMedia(r); fm != mediaJSON && fm != mediaGraphQLResponse {
			t.Fatalf("fallbackMedia = %q", fm)
		}
		jm, jok := jsonAsReadily(r)
		if jok && (jm != m || !ok) {
			t.Fatalf("Accept %q: jsonAsReadily = %q, %v but negotiate = %q, %v", values, jm, jok, m, ok)
		}
	})
}

// TestAcceptIgnoresNaNQuality: an Accept element with q=NaN is skipped as
// any q that does not parse; it passed parseQ's range check (NaN < 0 and
// NaN > 1 are both false) and, through max, poisoned the q of a range
// listed validly elsewhere (a 406 for a request that accepts JSON).
func TestAcceptIgnoresNaNQuality(t *testing.T) {
	for _, accept := range []string{
		"application/json;q=0.5, application/json;q=NaN",
		"application/json;q=NaN, application/graphql-response+json;q=0.5",
	} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", accept)
		m, ok := negotiate(r)
		want, wantOK := fzRef([]string{accept})
		if m != want || ok != wantOK {
			t.Errorf("Accept %q: negotiate = %q, %v; want %q, %v (q=NaN is no q-value; the element must be ignored)", accept, m, ok, want, wantOK)
		}
	}
}

// fzLoneRef walks the strings of valid JSON text and reports
// whether any \u escape leaves half of a surrogate pair alone, decoding
// escapes exactly as UTF-16.
func fzLoneRef(data []byte) bool {
	in := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !in {
			if c == '"' {
				in = true
			}
			continue
		}
		switch c {
		case '"':
			in = false
		case '\\':
			if data[i+1] != 'u' {
				i++
				continue
			}
			r, _ := strconv.ParseUint(string(data[i+2:i+6]), 16, 32)
			i += 5
			switch {
			case utf16.IsSurrogate(rune(r)) && r >= 0xDC00:
				return true
			case utf16.IsSurrogate(rune(r)):
				if i+6 < len(data) && data[i+1] == '\\' && data[i+2] == 'u' {
					lo, _ := strconv.ParseUint(string(data[i+3:i+7]), 16, 32)
					if lo >= 0xDC00 && lo <= 0xDFFF {
						i += 6
						continue
					}
				}
				return true
			}
		}
	}
	return false
}

// fzHasFFFD reports whether v holds U+FFFD in any string or key.
func fzHasFFFD(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, utf8.RuneError)
	case []any:
		for _, e := range x {
			if fzHasFFFD(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if fzHasFFFD(k) || fzHasFFFD(e) {
				return true
			}
		}
	}
	return false
}

func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{
		`{"q":"\ud83d\ude00"}`, `{"q":"\ud800"}`, `{"q":"\udc00"}`, `{"q":"\\ud800"}`,
		`{"q":"\ud800\ud800\udc00"}`, `{"q":"\ud800\n"}`, `["\uDBFF\uDFFF", "\uFFFD", "\ufffd"]`,
		`{"\ud800":1}`, `"\\\ud800"`, `"\u00e9\\u"`, `{"q":"\ud800\u0041"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := surrogate.LoneInJSON(data)
		if !utf8.Valid(data) || !json.Valid(data) {
			decodeJSON("body", data) // must not panic
			return
		}
		if want := fzLoneRef(data); got != want {
			t.Fatalf("surrogate.LoneInJSON(%q) = %v; walking its strings gives %v", data, got, want)
		}
		v, rerr := decodeJSON("body", data)
		if got {
			if rerr == nil {
				t.Fatalf("decodeJSON(%q) accepted a lone surrogate", data)
			}
			return
		}
		if rerr != nil {
			t.Fatalf("decodeJSON(%q) refused valid JSON: %s", data, rerr.msg)
		}
		// U+FFFD may only come from the text: literally or as \ufffd.
		literal := strings.ContainsRune(string(data), utf8.RuneError) || strings.Contains(strings.ToLower(string(data)), `\ufffd`)
		if !literal && fzHasFFFD(v) {
			t.Fatalf("decodeJSON(%q) produced U+FFFD the client did not send", data)
		}
	})
}

func FuzzOrigin(f *testing.F) {
	for _, s := range [][3]string{
		{"https://app.example.com", "https://app.example.com", "herald.example.com"},
		{"https://*.example.com", "https://a.b.example.com", "herald"},
		{"https://*.example.com:8443", "https://a.example.com:8443", "herald"},
		{"http://example.com:80", "http://EXAMPLE.com", "herald"},
		{"https://*.example.com", "https://example.com", "herald"},
		{"*", "null", "herald"},
		{"https://[::1]:443", "https://[::1]", "x"},
		{"https://*.example.com", "https://evil.com#.example.com", "x"},
		{"https://*.example.com", "https://evil.com?.example.com", "x"},
		{"https://*.example.com", "https://u@a.example.com", "x"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, entry, origin, host string) {
		p, err := newOriginPolicy([]string{entry})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if origin == "" {
			return
		}
		allowed := p.allowsOrigin(origin, host)
		if !allowed {
			return
		}
		// Whatever is allowed is an http(s) origin whose host is the
		// request's, an exact entry, or under a wildcard's domain.
		u, err := fzParseURL(origin)
		if err != nil {
			t.Fatalf("allowed origin %q that does not parse: %v", origin, err)
		}
		if u.scheme != "http" && u.scheme != "https" {
			t.Fatalf("allowed origin %q with scheme %q", origin, u.scheme)
		}
		if p.any || sameHost(u.scheme, u.host, host) {
			return
		}
		// Not same-origin: the origin must be a bare scheme://host[:port],
		// else the browser never sends it and something is being smuggled.
		// (A path, query or user in the origin is ignored: browsers never
		// send one, and only the host decides.)
		e := strings.ToLower(strings.TrimSpace(entry))
		if rest, ok := strings.CutPrefix(e, u.scheme+"://*."); ok {
			dom := strings.TrimSuffix(withoutDefaultPort(u.scheme, strings.TrimSuffix(rest, "/")), "")
			h := withoutDefaultPort(u.scheme, strings.ToLower(u.host))
			hn, hp := splitPort(h)
			dn, dp := splitPort(dom)
			if hp != dp || !strings.HasSuffix(hn, "."+dn) {
				t.Fatalf("entry %q allows origin %q (host %q)", entry, origin, u.host)
			}
			return
		}
		if withoutDefaultPort(u.scheme, u.scheme+"://"+strings.ToLower(u.host)) != withoutDefaultPort(u.scheme, strings.TrimSuffix(e, "/")) {
			t.Fatalf("entry %q allows origin %q", entry, origin)
		}
	})
}

type fzURL struct {
	scheme, host string
	extra        bool
}

func fzParseURL(s string) (fzURL, error) {
	u, err := fzURLParse(s)
	if err != nil {
		return fzURL{}, err
	}
	return fzURL{scheme: u.Scheme, host: u.Host, extra: (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" || u.ForceQuery}, nil
}

// FuzzJudgeNumber checks judgeNumber's Int and ID decisions against
// math/big: an Int is an integer in int32 range, however written; an ID
// written with a fraction or exponent an integer in int64 range.
func FuzzJudgeNumber(f *testing.F) {
	for _, s := range []string{"0", "-0.0", "2147483647", "2147483648", "-2147483648e0", "3e9", "1.5", "21474836.47e2",
		"9223372036854775807.0", "9223372036854775808e0", "-9223372036854775808e0", "1e-400", "1e400", "0e999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 100 || !json.Valid([]byte(text)) || !strings.ContainsAny(text[:1], "-0123456789") {
			return
		}
		if _, exp, ok := strings.Cut(strings.ToLower(text), "e"); ok {
			if e, err := strconv.Atoi(exp); err != nil || e < -400 || e > 400 {
				return
			}
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			return
		}
		for _, c := range []struct {
			typ      string
			min, max int64
		}{{"Int", math.MinInt32, math.MaxInt32}, {"ID", math.MinInt64, math.MaxInt64}} {
			canon, why := judgeNumber(c.typ, json.Number(text))
			plain := !strings.ContainsAny(text, ".eE")
			wantOK := r.IsInt() && r.Num().IsInt64() && r.Num().Int64() >= c.min && r.Num().Int64() <= c.max
			if c.typ == "ID" && plain {
				wantOK = true
			}
			if (why == "") != wantOK {
				t.Fatalf("judgeNumber(%s, %q) = %q, %q; math/big says acceptable = %v", c.typ, text, canon, why, wantOK)
			}
			if why == "" && !plain {
				if canon.String() != r.Num().String() {
					t.Fatalf("judgeNumber(%s, %q) canon %q; want %q", c.typ, text, canon, r.Num())
				}
			}
			if why == "" && plain && canon != "" {
				t.Fatalf("judgeNumber(%s, %q) rewrote plain number to %q", c.typ, text, canon)
			}
		}
		_, why := judgeNumber("Float", json.Number(text))
		f64, _ := r.Float64()
		if wantOK := !math.IsInf(f64, 0); (why == "") != wantOK {
			t.Fatalf("judgeNumber(Float, %q) = %q; finite = %v", text, why, wantOK)
		}
	})
}

// FuzzStreamToken: validStreamToken accepts exactly what
// newStreamToken could produce: 16 bytes in unpadded base64url, whose
// re-encoding is the token itself.
func FuzzStreamToken(f *testing.F) {
	tok, _ := newStreamToken()
	f.Add(tok)
	f.Add("AAAAAAAAAAAAAAAAAAAAA_")
	f.Add("AAAAAAAAAAAAAAAAAAAAAB")
	f.Fuzz(func(t *testing.T, s string) {
		valid := validStreamToken(s)
		b, err := fzB64.DecodeString(s)
		canonical := err == nil && len(b) == 16 && fzB64.EncodeToString(b) == s
		if valid && err != nil {
			t.Fatalf("validStreamToken(%q) = true, but it is no base64url: %v", s, err)
		}
		if canonical && !valid {
			t.Fatalf("validStreamToken(%q) = false for a token newStreamToken can make", s)
		}
	})
}
