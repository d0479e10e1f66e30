package auth

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/internal/surrogate"
	"github.com/heraldhq/herald/internal/urlcred"
)

const (
	// MaxUserIDLength bounds the sub claim, in characters: the domain stores
	// the user ID with every message and event, however trusted the issuer.
	MaxUserIDLength = 256
	// MaxNameLength bounds the display name taken from a token, in
	// characters; a longer one is cut, not refused, as it is cosmetic.
	MaxNameLength = MaxDevUserLength
	// Realm is the realm named in the WWW-Authenticate challenge.
	Realm = "herald"

	// Defaults for JWTOptions.
	DefaultNameClaim          = "name"
	DefaultJWKSFetchTimeout   = 10 * time.Second
	DefaultMinRefreshInterval = time.Minute
	DefaultJWKSCacheTTL       = time.Hour

	// maxTokenBytes bounds a token before any base64 or JSON work; real
	// tokens are well under 4 KiB.
	maxTokenBytes = 16 << 10
	// minSecretBytes is the hash output size (RFC 7518 §3.2): a shorter
	// HS256 secret can be brute-forced from a single token.
	minSecretBytes = 32
)

// JWTOptions configures NewJWT. The key source is Secret, a JWK Set
// (JWKSFile or JWKSURL), or both; everything else is optional.
type JWTOptions struct {
	// Secret is the HS256 key, at least 32 bytes; only HS256 tokens are
	// checked against it.
	Secret []byte
	// JWKSFile holds a JWK Set (RFC 7517) of RSA and EC public keys, read
	// once by NewJWT.
	JWKSFile string
	// JWKSURL is where the identity provider publishes its JWK Set. It must
	// be https, except on a loopback host, and so must any redirect: whoever
	// can alter the set can sign in as anyone. NewJWT fetches it and fails if
	// it cannot; it is refetched when a token names an unknown kid, when
	// the cached keys refuse a token's signature (a key rotated in place,
	// under the same kid or none), or when the set is older than CacheTTL.
	JWKSURL string

	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be among the token's aud values. Set it if the
	// issuer also signs tokens for other services, or those will pass here.
	Audience string
	// NameClaim holds the display name (default "name"); tokens without it
	// are named after their sub.
	NameClaim string
	// AdminClaim, when set, names a claim that makes a token an
	// administrator's (Identity.Admin) when its value is the JSON true;
	// anything else, or its absence, is an ordinary user.
	AdminClaim string
	// CookieName, when set, is a cookie FromRequest reads the token from
	// without an Authorization header, since browsers cannot set headers on
	// a WebSocket handshake. Cookies ride cross-site requests too: this is
	// safe only if WebSocket handshakes' Origin is checked (and the cookie is
	// SameSite).
	CookieName string
	// Leeway is the clock skew tolerated on exp and nbf (default 0).
	Leeway time.Duration

	// FetchTimeout bounds each JWKS fetch (default 10 s). At start NewJWT's
	// context bounds it too; a refetch is not cut by the requests that wait
	// for it.
	FetchTimeout time.Duration
	// MinRefreshInterval is the least time between two fetches of JWKSURL
	// (default 1 minute), whatever tokens clients present.
	MinRefreshInterval time.Duration
	// CacheTTL is how long a fetched set is trusted before the next token
	// that needs it refetches it (default 1 hour), so that a withdrawn key
	// stops working. If that refetch fails, the old set stays in use.
	CacheTTL time.Duration

	// Now returns the current time (default time.Now); tests set it.
	Now func() time.Time
}

// JWT authenticates clients by a signed JSON Web Token: HS256 against a
// shared secret, or RS256/ES256/ES384/ES512 against a JWK Set.
//
// Every token must carry sub, which becomes the UserID, and exp: a bearer
// credential without one would grant access forever. exp plus Leeway, the
// instant from which the token is refused, becomes Identity.ExpiresAt, so
// that sockets do not outlive their token.
//
// A JWT is safe for concurrent use.
type JWT struct {
	opts    JWTOptions // as given, NameClaim and Now defaulted, Secret moved to secret
	secret  []byte
	jwks    *jwksSource // nil without a JWK Set
	parser  *jwt.Parser
	methods []string
}

var _ Authenticator = (*JWT)(nil)

// NewJWT checks opts and loads the key source. With a JWKSURL it fetches the
// set within ctx before returning, so that a wrong URL or an unreachable
// provider is reported at start rather than as failed logins later.
func NewJWT(ctx context.Context, opts JWTOptions) (*JWT, error) {
	switch {
	case opts.Leeway < 0:
		return nil, fmt.Errorf("auth: jwt: Leeway is negative (%v)", opts.Leeway)
	case opts.MinRefreshInterval < 0 || opts.CacheTTL < 0 || opts.FetchTimeout < 0:
		return nil, errors.New("auth: jwt: MinRefreshInterval, CacheTTL and FetchTimeout must not be negative")
	case opts.Secret == nil && opts.JWKSFile == "" && opts.JWKSURL == "":
		return nil, errors.New("auth: jwt: no key source: set Secret, JWKSFile or JWKSURL")
	case opts.Secret != nil && len(opts.Secret) < minSecretBytes:
		return nil, fmt.Errorf("auth: jwt: Secret is %d bytes, HS256 needs at least %d", len(opts.Secret), minSecretBytes)
	case opts.JWKSFile != "" && opts.JWKSURL != "":
		return nil, errors.New("auth: jwt: set only one of JWKSFile and JWKSURL")
	}
	opts.NameClaim = cmp.Or(opts.NameClaim, DefaultNameClaim)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	j := &JWT{opts: opts}
	if opts.Secret != nil {
		j.secret, j.opts.Secret = slices.Clone(opts.Secret), nil
		j.methods = append(j.methods, "HS256")
	}
	switch {
	case opts.JWKSFile != "":
		f, err := os.Open(opts.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: reading JWKS file: %w", err)
		}
		set, err := readJWKS(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: JWKS file %s: %w", opts.JWKSFile, err)
		}
		j.jwks = &jwksSource{set: set}
	case opts.JWKSURL != "":
		u, err := parseJWKSURL(opts.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: JWKSURL: %w", err)
		}
		src := &jwksSource{
			url: u,
			client: &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 10 {
					return errors.New("stopped after 10 redirects")
				}
				return checkJWKSURL(req.URL)
			}},
			fetchTimeout: cmp.Or(opts.FetchTimeout, DefaultJWKSFetchTimeout),
			minRefresh:   cmp.Or(opts.MinRefreshInterval, DefaultMinRefreshInterval),
			ttl:          cmp.Or(opts.CacheTTL, DefaultJWKSCacheTTL),
			now:          opts.Now,
		}
		// src is not shared yet: the first fetch needs no flight.
		if src.refetch(ctx) {
			return nil, fmt.Errorf("auth: jwt: fetching JWKS from %s: %w", u.Redacted(), ctx.Err())
		}
		if src.set == nil {
			return nil, fmt.Errorf("auth: %w", src.lastErr)
		}
		j.jwks = src
	}
	if j.jwks != nil {
		// Only asymmetric algorithms for the set: HS256 there is the classic
		// confusion attack (an HMAC keyed with the public key).
		j.methods = append(j.methods, "RS256", "ES256", "ES384", "ES512")
	}
	// Strict decoding: a signature segment is one spelling of the
	// signature, not several that differ in bits beyond its last byte.
	popts := []jwt.ParserOption{jwt.WithValidMethods(j.methods), jwt.WithExpirationRequired(), jwt.WithStrictDecoding(),
		jwt.WithLeeway(opts.Leeway), jwt.WithTimeFunc(opts.Now), jwt.WithIssuer(opts.Issuer)} // "" checks no issuer
	if opts.Audience != "" { // whereas WithAudience("") would demand an aud claim
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	j.parser = jwt.NewParser(popts...)
	return j, nil
}

// CheckJWKSURL reports whether raw can be JWTOptions.JWKSURL, so that a
// configuration can be checked before anything starts: an absolute https
// URL, or http on loopback.
func CheckJWKSURL(raw string) error {
	_, err := parseJWKSURL(raw)
	return err
}

func parseJWKSURL(raw string) (*url.URL, error) {
	if strings.Contains(raw, "#") {
		// No request carries a fragment. A "#" in a password or token
		// ends the host where it stands, and url.Parse would quote the
		// password's start as a port, or take it for the host.
		return nil, errors.New(`has a "#", which no request sends: write a "#" in a password or token as %23`)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %s", urlcred.ParseProblem(raw, err))
	}
	if err := checkJWKSURL(u); err != nil {
		return nil, err
	}
	return u, nil
}

// checkJWKSURL insists on an absolute https URL, or http on loopback.
func checkJWKSURL(u *url.URL) error {
	switch host := u.Hostname(); {
	case u.Host == "":
		// Redacted, as below: u.String() would show a password, re-escaped
		// ("!" as "%21") where a caller hiding it looks for it as written.
		return fmt.Errorf("%q is not an absolute URL", u.Redacted())
	case u.Scheme == "https":
	case u.Scheme != "http":
		return fmt.Errorf("%s: scheme %q is not http or https", u.Redacted(), u.Scheme)
	case host != "localhost" && !net.ParseIP(host).IsLoopback():
		return fmt.Errorf("%s must use https (plain http is allowed only on loopback)", u.Redacted())
	}
	return nil
}

// Challenge is the WWW-Authenticate value to send with a 401 for a request
// that carried no credentials (RFC 6750 §3).
func (*JWT) Challenge() string {
	return `Bearer realm="` + Realm + `"`
}

// ChallengeFor is the WWW-Authenticate value to send with a 401 caused by
// err: a refused token gets error="invalid_token", so that the client
// refreshes it instead of retrying it; anything else the plain Challenge.
func (j *JWT) ChallengeFor(err error) string {
	if errors.Is(err, ErrInvalidCredentials) {
		return j.Challenge() + `, error="invalid_token"`
	}
	return j.Challenge()
}

// FromRequest authenticates "Authorization: Bearer <token>" or, without an
// Authorization header, the token in the CookieName cookie. An empty header
// or cookie is absent (clients send "" for "no token"); any other header that
// is not a Bearer token is refused, so that a client that meant to
// authenticate is not silently anonymous.
func (j *JWT) FromRequest(r *http.Request) (Identity, bool, error) {
	switch values := r.Header.Values("Authorization"); {
	case len(values) > 1:
		return Identity{}, false, invalidCredentials("Authorization header",
			invalid("jwt: %d Authorization headers, want one", len(values)))
	case len(values) == 1 && strings.TrimSpace(values[0]) != "":
		token, err := bearerToken(values[0], false)
		if err != nil {
			return Identity{}, false, invalidCredentials("Authorization header", err)
		}
		return j.authenticate(r.Context(), token, "Authorization header")
	}
	if j.opts.CookieName != "" {
		if c, err := r.Cookie(j.opts.CookieName); err == nil && c.Value != "" {
			return j.authenticate(r.Context(), c.Value, "cookie "+j.opts.CookieName)
		}
	}
	return Identity{}, false, nil
}

// FromInitPayload authenticates the "Authorization" or "authorization" key
// of a connection_init payload, as Apollo's connectionParams spell it either
// way, holding "Bearer <token>" or the bare token. The same keys inside a
// "headers" object count too: Hasura's clients and many Apollo examples send
// {"headers": {"Authorization": …}}, and taking that for anonymous would
// leave their user signed out without a word of why. An absent, null
// or empty value is anonymous; two keys holding different values are an
// error, not a choice.
func (j *JWT) FromInitPayload(ctx context.Context, payload map[string]any) (Identity, bool, error) {
	var value, key string
	headers, _ := payload["headers"].(map[string]any)
	for _, c := range [...]struct {
		from      map[string]any
		key, name string
	}{
		{payload, "Authorization", "Authorization"}, {payload, "authorization", "authorization"},
		{headers, "Authorization", "headers.Authorization"}, {headers, "authorization", "headers.authorization"},
	} {
		s, isString := c.from[c.key].(string)
		switch raw := c.from[c.key]; {
		case raw == nil || isString && strings.TrimSpace(s) == "":
			continue
		case !isString:
			return Identity{}, false, invalidCredentials("connection_init payload key "+c.name,
				invalid("jwt: value must be a string, got %s", jsonType(raw)))
		case key != "" && s != value:
			return Identity{}, false, invalidCredentials("connection_init payload",
				invalid("jwt: keys %s and %s hold different values", key, c.name))
		}
		if key == "" {
			value, key = s, c.name
		}
	}
	if key == "" {
		return Identity{}, false, nil
	}
	source := "connection_init payload key " + key
	token, err := bearerToken(value, true)
	if err != nil {
		return Identity{}, false, invalidCredentials(source, err)
	}
	return j.authenticate(ctx, token, source)
}

// FromToken authenticates a token an operation carries as an argument:
// "Bearer <token>" or the bare token. An empty or blank one is anonymous.
func (j *JWT) FromToken(ctx context.Context, token string) (Identity, bool, error) {
	if strings.TrimSpace(token) == "" {
		return Identity{}, false, nil
	}
	raw, err := bearerToken(token, true)
	if err != nil {
		return Identity{}, false, invalidCredentials("token", err)
	}
	return j.authenticate(ctx, raw, "token")
}

// bearerToken extracts the token from "Bearer <token>" (scheme
// case-insensitive, RFC 7235 §2.1), or from a bare token when bareOK.
func bearerToken(value string, bareOK bool) (string, error) {
	value = strings.TrimSpace(value)
	scheme, token, spaced := strings.Cut(value, " ")
	token = strings.TrimSpace(token)
	switch {
	case strings.EqualFold(scheme, "Bearer") && token == "":
		return "", invalid("jwt: empty Bearer token")
	case !spaced && bareOK:
		return value, nil
	case !spaced:
		return "", invalid("jwt: Authorization scheme must be Bearer")
	case !strings.EqualFold(scheme, "Bearer"):
		return "", invalid("jwt: Authorization scheme %q is not Bearer", clip(scheme))
	}
	return token, nil
}

// authenticate verifies raw and maps its claims to an Identity. Errors name
// source, and wrap ErrInvalidCredentials if the token is at fault.
func (j *JWT) authenticate(ctx context.Context, raw, source string) (Identity, bool, error) {
	id, err := j.verify(ctx, raw)
	if _, isInvalid := errors.AsType[*invalidError](err); isInvalid {
		return Identity{}, false, invalidCredentials(source, err)
	}
	if err != nil {
		return Identity{}, false, fmt.Errorf("auth: %s: %w", source, err)
	}
	return id, true, nil
}

// verify checks raw's signature and claims and returns its identity. Client
// faults come back as *invalidError; anything else means the server could
// not check.
func (j *JWT) verify(ctx context.Context, raw string) (Identity, error) {
	if len(raw) > maxTokenBytes {
		return Identity{}, invalid("jwt: token is %d bytes, at most %d allowed", len(raw), maxTokenBytes)
	}
	claims, token, used, err := j.parse(ctx, raw)
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) && used != nil && j.jwks.url != nil {
		// The provider may have rotated its key in place: a new key under
		// the same kid, or under none (a single key, no kid). Neither
		// looks like an unknown kid, so refetch as for one, within the
		// same MinRefreshInterval bound, and try the new set. Without
		// this every user would be refused until CacheTTL.
		set, kerr := j.jwks.keys(ctx, func(s *keySet) bool { return s != used })
		if kerr != nil {
			return Identity{}, kerr
		}
		if set != used {
			claims, token, _, err = j.parse(ctx, raw)
		}
	}
	if kerr, keyFailed := errors.AsType[*keyError](err); keyFailed {
		return Identity{}, kerr.err
	}
	if err != nil {
		return Identity{}, j.describe(token, claims, err)
	}
	if err := checkClaimsText(raw); err != nil {
		return Identity{}, err
	}
	return j.identity(claims)
}

// checkClaimsText refuses a token whose claims are not text as JSON means
// it: bytes that are not UTF-8 (RFC 7519 §7: the claims set is UTF-8), or
// an escape of half a UTF-16 surrogate pair alone ("\ud800"), which is no
// character. encoding/json reads either as U+FFFD, so the subs
// "alice\ud800" and "alice\udbff" would be one user, and a sub is never
// altered (see identity). raw's signature has been checked, so it has
// three segments.
func checkClaimsText(raw string) error {
	_, rest, _ := strings.Cut(raw, ".")
	segment, _, _ := strings.Cut(rest, ".")
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(segment, "="))
	switch {
	case err != nil:
		return invalid("jwt: claims are not base64url: %v", err)
	case !utf8.Valid(payload):
		return invalid("jwt: claims are not valid UTF-8")
	case surrogate.LoneInJSON(payload):
		return invalid("jwt: claims escape half of a UTF-16 surrogate pair alone, which is no character")
	}
	return nil
}

// keyError carries the key look-up's own error past the parser, which
// would otherwise bury it under its generic "token is unverifiable".
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// parse checks raw's signature and registered claims. used is the JWK Set
// its keys came from (nil for HS256, or when it failed before). A failed
// key look-up comes back as a *keyError.
func (j *JWT) parse(ctx context.Context, raw string) (claims jwt.MapClaims, token *jwt.Token, used *keySet, err error) {
	var keyErr error
	claims = jwt.MapClaims{}
	token, err = j.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		key, set, err := j.key(ctx, t)
		keyErr, used = err, set
		return key, err
	})
	if keyErr != nil {
		return claims, token, used, &keyError{keyErr}
	}
	return claims, token, used, err
}

// key picks the keys that may verify t, whose algorithm the parser has
// already checked is one of j.methods, and the JWK Set they come from.
func (j *JWT) key(ctx context.Context, t *jwt.Token) (any, *keySet, error) {
	// Herald implements no JWS extension, so a token that needs one
	// understood must be refused (RFC 7515 §4.1.11): "b64": false, say,
	// changes what the signature covers.
	if crit, present := t.Header["crit"]; present {
		return nil, nil, invalid("jwt: critical header parameters %s are not understood", quoteNames(crit))
	}
	alg := t.Method.Alg()
	if alg == "HS256" {
		return j.secret, nil, nil
	}
	kid, isString := t.Header["kid"].(string)
	if v, present := t.Header["kid"]; present && !isString {
		return nil, nil, invalid("jwt: kid header must be a string, got %s", jsonType(v))
	}
	// Refetch when the kid is unknown or no key under it (or, without kid,
	// none at all) fits its algorithm: either may mean the provider rotated
	// keys, in place under the same kid to another key type included.
	set, err := j.jwks.keys(ctx, func(s *keySet) bool {
		keys, _ := s.lookup(kid, alg)
		return len(keys) > 0
	})
	if err != nil {
		return nil, nil, err
	}
	keys, known := set.lookup(kid, alg)
	switch {
	case kid != "" && !known:
		return nil, nil, invalid("jwt: unknown key id %q", clip(kid))
	case kid != "" && len(keys) == 0:
		return nil, nil, invalid("jwt: key %q cannot verify %s signatures", clip(kid), alg)
	case len(keys) == 0:
		return nil, nil, invalid("jwt: no key for %s signatures", alg)
	}
	return jwt.VerificationKeySet{Keys: keys}, set, nil
}

// describe turns a parser error into an invalidError that says what exactly
// is wrong. The claims are only quoted, never trusted: the parser has
// already refused the token.
func (j *JWT) describe(token *jwt.Token, claims jwt.MapClaims, err error) error {
	if errors.Is(err, jwt.ErrTokenMalformed) {
		return invalid("jwt: malformed token: %v", err)
	}
	alg, _ := token.Header["alg"].(string)
	switch {
	case !slices.Contains(j.methods, alg):
		return invalid("jwt: signing algorithm %q is not accepted (want %s)", clip(alg), strings.Join(j.methods, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid("jwt: signature is invalid")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		if msgs := j.claimProblems(err, claims); len(msgs) > 0 {
			return invalid("jwt: %s", strings.Join(msgs, "; "))
		}
	}
	return invalid("jwt: %v", err)
}

// claimProblems says which registered claims the parser refused, and with
// what values. What failed is read off golang-jwt's error, never re-checked,
// so the wording cannot drift from the verdict. ErrTokenRequiredClaimMissing
// and ErrInvalidType do not say which claim they are about, so they go to the
// checked claims that are absent or of the wrong type.
func (j *JWT) claimProblems(err error, claims jwt.MapClaims) []string {
	missing := errors.Is(err, jwt.ErrTokenRequiredClaimMissing)
	badType := errors.Is(err, jwt.ErrInvalidType)
	var msgs []string
	switch exp, typeErr := claims.GetExpirationTime(); {
	case badType && typeErr != nil:
		msgs = append(msgs, "exp claim is not a number")
	case missing && exp == nil:
		msgs = append(msgs, "token has no exp claim (tokens must expire)")
	case errors.Is(err, jwt.ErrTokenExpired):
		msgs = append(msgs, "token expired at "+exp.UTC().Format(time.RFC3339))
	}
	switch nbf, typeErr := claims.GetNotBefore(); {
	case badType && typeErr != nil:
		msgs = append(msgs, "nbf claim is not a number")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		msgs = append(msgs, "token is not valid before "+nbf.UTC().Format(time.RFC3339))
	}
	if j.opts.Issuer != "" {
		switch iss, typeErr := claims.GetIssuer(); {
		case badType && typeErr != nil:
			msgs = append(msgs, "iss claim is not a string")
		case missing && iss == "":
			msgs = append(msgs, fmt.Sprintf("token has no issuer, want %q", j.opts.Issuer))
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			msgs = append(msgs, fmt.Sprintf("issuer %q is not the expected %q", clip(iss), j.opts.Issuer))
		}
	}
	if j.opts.Audience != "" {
		switch aud, typeErr := claims.GetAudience(); {
		case badType && typeErr != nil:
			msgs = append(msgs, "aud claim is not a string or an array of strings")
		case missing && !slices.ContainsFunc(aud, func(a string) bool { return a != "" }):
			msgs = append(msgs, fmt.Sprintf("token has no audience, want %q", j.opts.Audience))
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			shown := make([]string, 0, 5)
			for _, a := range aud[:min(len(aud), 5)] {
				shown = append(shown, clip(a))
			}
			msgs = append(msgs, fmt.Sprintf("audience %q does not include the expected %q", shown, j.opts.Audience))
		}
	}
	return msgs
}

// identity maps verified claims to an Identity. A sub is never altered, as
// two different subs must stay two users; a display name is cleaned.
func (j *JWT) identity(claims jwt.MapClaims) (Identity, error) {
	// The parser reads a NumericDate beyond int64 seconds as the distant
	// past, so an nbf of 1e19 would let a token in today.
	for _, name := range []string{"exp", "nbf", "iat"} {
		if v, isNumber := claims[name].(float64); isNumber && (v > maxNumericDate || v < minNumericDate) {
			return Identity{}, invalid("jwt: %s claim %g is out of range (years 0 to 9999)", name, v)
		}
	}
	raw, present := claims["sub"]
	sub, isString := raw.(string)
	switch {
	case !present:
		return Identity{}, invalid("jwt: token has no sub claim")
	case !isString:
		return Identity{}, invalid("jwt: sub claim must be a string, got %s", jsonType(raw))
	case sub == "":
		return Identity{}, invalid("jwt: sub claim is empty")
	}
	if err := checkUserName(sub, MaxUserIDLength); err != nil {
		return Identity{}, invalid("jwt: sub claim %v", err)
	}
	name, _ := claims[j.opts.NameClaim].(string)
	if name = sanitizeName(name); name == "" {
		name = sanitizeName(sub)
	}
	id := Identity{UserID: sub, Name: name}
	if j.opts.AdminClaim != "" {
		id.Admin = claims[j.opts.AdminClaim] == true
	}
	// The parser has required exp. The token is accepted until exp+leeway,
	// so the socket may stay open as long.
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		id.ExpiresAt = exp.Add(j.opts.Leeway)
	}
	return id, nil
}

// A token's times lie within years 0 to 9999: 0000-01-01T00:00:00Z and
// 9999-12-31T23:59:59Z in seconds.
const (
	minNumericDate = -62167219200
	maxNumericDate = 253402300799
)

// sanitizeName makes a display name safe to show: what checkUserName refuses
// (invalid UTF-8, controls, line breaks) becomes spaces, runs of spaces
// collapse, and the result is cut to MaxNameLength. The issuer is trusted, so
// a name is cleaned rather than the token refused.
func sanitizeName(s string) string {
	words := strings.FieldsFunc(strings.ToValidUTF8(s, "\uFFFD"), func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r)
	})
	name := []rune(strings.Join(words, " "))
	return strings.TrimRight(string(name[:min(len(name), MaxNameLength)]), " ")
}

// quoteNames quotes a header value that should list names, for messages:
// at most 5 of them, each clipped.
func quoteNames(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(clip(v))
	case []any:
		names := make([]string, 0, 5)
		for _, n := range v[:min(len(v), 5)] {
			s, isString := n.(string)
			if !isString {
				return "(an array holding " + jsonType(n) + ")"
			}
			names = append(names, clip(s))
		}
		return fmt.Sprintf("%q", names)
	}
	return "(" + jsonType(v) + ")"
}

// jsonType names the JSON type of a decoded claim value, for messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// invalidError is a client fault found while checking a token; callers wrap
// it in ErrInvalidCredentials together with where the token came from.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// invalidCredentials labels a client fault as Dev does:
// "invalid credentials: <source>: <what>".
func invalidCredentials(source string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrInvalidCredentials, source, err)
}

// clip shortens a client-supplied string for an error message, so that a
// hostile value cannot bloat logs.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
