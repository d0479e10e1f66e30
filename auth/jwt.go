package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// MaxUserIDLength bounds the sub claim, in characters. The domain stores the
// user ID with every message and event, so no token may make it unbounded,
// however trusted its issuer.
const MaxUserIDLength = 256

// MaxNameLength bounds the display name taken from a token, in characters;
// longer names are cut rather than refused, since the name is cosmetic.
const MaxNameLength = MaxDevUserLength

// maxTokenBytes bounds a token before any parsing, so that oversized input
// costs no base64 or JSON work. Real tokens are well under 4 KiB.
const maxTokenBytes = 16 << 10

// Defaults for JWTOptions.
const (
	DefaultNameClaim          = "name"
	DefaultJWKSFetchTimeout   = 10 * time.Second
	DefaultMinRefreshInterval = time.Minute
	DefaultJWKSCacheTTL       = time.Hour
)

// minSecretBytes is the shortest HS256 secret accepted: RFC 7518 §3.2 asks
// for a key at least as long as the hash output (256 bits), and a shorter
// one can be brute-forced from a single captured token.
const minSecretBytes = 32

// Realm is the realm named in the WWW-Authenticate challenge.
const Realm = "herald"

// JWTOptions configures NewJWT. The key source is Secret, a JWK Set
// (JWKSFile or JWKSURL), or both; everything else is optional.
type JWTOptions struct {
	// Secret is the HS256 key, at least 32 bytes. Only HS256 tokens are
	// checked against it.
	Secret []byte
	// JWKSFile is a file holding a JWK Set (RFC 7517) of RSA and EC public
	// keys; it is read once, by NewJWT.
	JWKSFile string
	// JWKSURL is where the identity provider publishes its JWK Set. It must
	// be https, except on a loopback host: whoever can alter the set can
	// sign in as anyone. NewJWT fetches it once and fails if it cannot; it
	// is refetched when a token names an unknown kid or the set is older
	// than CacheTTL.
	JWKSURL string

	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be among the token's aud claim values. Set
	// it whenever the issuer also signs tokens for other services, or those
	// tokens will be accepted here too.
	Audience string
	// NameClaim is the claim holding the display name (default "name");
	// tokens without it are named after their sub.
	NameClaim string
	// CookieName, when set, is a cookie FromRequest reads the token from if
	// there is no Authorization header, since browsers cannot set headers on
	// a WebSocket handshake. Cookies are sent on cross-site requests too, so
	// this is safe only if the server checks the Origin of WebSocket
	// handshakes (and the cookie is SameSite).
	CookieName string
	// Leeway is the clock skew tolerated on exp and nbf (default 0).
	Leeway time.Duration

	// HTTPClient fetches JWKSURL (default: a client with a 10 s timeout
	// that follows redirects only to URLs JWKSURL itself could be).
	HTTPClient *http.Client
	// FetchTimeout bounds each JWKS fetch, on top of the caller's context
	// (default 10 s).
	FetchTimeout time.Duration
	// MinRefreshInterval is the least time between two fetches of JWKSURL
	// (default 1 minute), whatever tokens clients present.
	MinRefreshInterval time.Duration
	// CacheTTL is how long a fetched key set is trusted before the next
	// token that needs it refetches it (default 1 hour), so that a key the
	// provider withdraws stops working. If that refetch fails, the old set
	// stays in use.
	CacheTTL time.Duration

	// Now returns the current time (default time.Now); tests set it.
	Now func() time.Time
}

// JWT authenticates clients by a signed JSON Web Token: HS256 against a
// shared secret, or RS256/ES256/ES384/ES512 against a JWK Set.
//
// Every token must carry sub and exp: sub becomes the UserID, and exp (plus
// Leeway, the instant from which the same token would be refused) becomes
// Identity.ExpiresAt, so that sockets do not outlive their token. A token
// without exp would grant access forever, which no deployment wants from a
// bearer credential.
//
// A JWT is safe for concurrent use.
type JWT struct {
	secret    []byte
	jwks      *jwksSource // nil without a JWK Set
	parser    *jwt.Parser
	methods   []string
	issuer    string
	audience  string
	nameClaim string
	cookie    string
	leeway    time.Duration
	now       func() time.Time
}

var _ Authenticator = (*JWT)(nil)

// NewJWT checks opts and loads the key source. With a JWKSURL it fetches
// the set before returning, within ctx, so a wrong URL or an unreachable
// provider is reported at start rather than as failed logins later.
func NewJWT(ctx context.Context, opts JWTOptions) (*JWT, error) {
	j := &JWT{
		issuer:    opts.Issuer,
		audience:  opts.Audience,
		nameClaim: opts.NameClaim,
		cookie:    opts.CookieName,
		leeway:    opts.Leeway,
		now:       opts.Now,
	}
	if j.nameClaim == "" {
		j.nameClaim = DefaultNameClaim
	}
	if j.now == nil {
		j.now = time.Now
	}
	if opts.Leeway < 0 {
		return nil, fmt.Errorf("auth: jwt: Leeway is negative (%v)", opts.Leeway)
	}
	if opts.MinRefreshInterval < 0 || opts.CacheTTL < 0 || opts.FetchTimeout < 0 {
		return nil, errors.New("auth: jwt: MinRefreshInterval, CacheTTL and FetchTimeout must not be negative")
	}

	if opts.Secret == nil && opts.JWKSFile == "" && opts.JWKSURL == "" {
		return nil, errors.New("auth: jwt: no key source: set Secret, JWKSFile or JWKSURL")
	}
	if opts.Secret != nil {
		if len(opts.Secret) < minSecretBytes {
			return nil, fmt.Errorf("auth: jwt: Secret is %d bytes, HS256 needs at least %d", len(opts.Secret), minSecretBytes)
		}
		j.secret = slices.Clone(opts.Secret)
		j.methods = append(j.methods, jwt.SigningMethodHS256.Alg())
	}
	switch {
	case opts.JWKSFile != "" && opts.JWKSURL != "":
		return nil, errors.New("auth: jwt: set only one of JWKSFile and JWKSURL")
	case opts.JWKSFile != "":
		data, err := readBounded(opts.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: reading JWKS file: %w", err)
		}
		set, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: JWKS file %s: %w", opts.JWKSFile, err)
		}
		j.jwks = &jwksSource{set: set, now: j.now}
	case opts.JWKSURL != "":
		u, err := checkJWKSURL(opts.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("auth: jwt: JWKSURL: %w", err)
		}
		src := &jwksSource{
			url:          u,
			client:       opts.HTTPClient,
			fetchTimeout: orDefault(opts.FetchTimeout, DefaultJWKSFetchTimeout),
			minRefresh:   orDefault(opts.MinRefreshInterval, DefaultMinRefreshInterval),
			ttl:          orDefault(opts.CacheTTL, DefaultJWKSCacheTTL),
			now:          j.now,
		}
		if src.client == nil {
			src.client = &http.Client{
				Timeout: DefaultJWKSFetchTimeout,
				// A redirect must not lead off https either.
				CheckRedirect: func(req *http.Request, via []*http.Request) error {
					if len(via) >= 10 {
						return errors.New("stopped after 10 redirects")
					}
					_, err := checkJWKSURL(req.URL.String())
					return err
				},
			}
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
		// Only asymmetric algorithms for the set: accepting HS256 there is
		// the classic confusion attack (an HMAC keyed with the public key).
		j.methods = append(j.methods, "RS256", "ES256", "ES384", "ES512")
	}

	popts := []jwt.ParserOption{
		jwt.WithValidMethods(j.methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(j.leeway),
		jwt.WithTimeFunc(j.now),
	}
	if j.issuer != "" {
		popts = append(popts, jwt.WithIssuer(j.issuer))
	}
	if j.audience != "" {
		popts = append(popts, jwt.WithAudience(j.audience))
	}
	j.parser = jwt.NewParser(popts...)
	return j, nil
}

// orDefault returns d, or def when d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// readBounded reads a JWKS file, refusing one larger than maxJWKSBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxJWKSBytes)
	}
	return data, nil
}

// checkJWKSURL parses the JWKS URL and insists on https off loopback.
func checkJWKSURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%s must use https (plain http is allowed only on loopback)", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("%s: scheme %q is not http or https", u.Redacted(), u.Scheme)
	}
	return u, nil
}

// Challenge is the WWW-Authenticate value to send with a 401 for a request
// that carried no credentials (RFC 6750 §3).
func (*JWT) Challenge() string {
	return `Bearer realm="` + Realm + `"`
}

// ChallengeFor is the WWW-Authenticate value to send with a 401 caused by
// err: a client whose token was refused is told so with
// error="invalid_token", so that it refreshes the token instead of retrying
// it; any other case gets the plain Challenge.
func (j *JWT) ChallengeFor(err error) string {
	if errors.Is(err, ErrInvalidCredentials) {
		return j.Challenge() + `, error="invalid_token"`
	}
	return j.Challenge()
}

// FromRequest authenticates "Authorization: Bearer <token>" or, without an
// Authorization header, the token in the CookieName cookie. An empty header
// or cookie counts as absent (clients often send "" for "no token"); any
// other header that is not a Bearer token is refused rather than ignored,
// so a client that meant to authenticate is not silently anonymous.
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
	if j.cookie != "" {
		if c, err := r.Cookie(j.cookie); err == nil && c.Value != "" {
			return j.authenticate(r.Context(), c.Value, "cookie "+j.cookie)
		}
	}
	return Identity{}, false, nil
}

// FromInitPayload authenticates the "Authorization" (or "authorization")
// key of a connection_init payload, holding "Bearer <token>" or the bare
// token: Apollo's connectionParams conventionally use either spelling, and
// clients put the header value there as often as the token alone. An
// absent, null or empty value is anonymous.
func (j *JWT) FromInitPayload(ctx context.Context, payload map[string]any) (Identity, bool, error) {
	var value, key string
	for _, k := range [...]string{"Authorization", "authorization"} {
		raw, present := payload[k]
		if !present || raw == nil {
			continue
		}
		s, isString := raw.(string)
		if !isString {
			return Identity{}, false, invalidCredentials("connection_init payload key "+k,
				invalid("jwt: value must be a string, got %s", jsonType(raw)))
		}
		if strings.TrimSpace(s) == "" {
			continue
		}
		if key != "" && s != value {
			return Identity{}, false, invalidCredentials("connection_init payload",
				invalid("jwt: keys %s and %s hold different values", key, k))
		}
		value, key = s, k
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

// bearerToken extracts the token from "Bearer <token>" (scheme
// case-insensitive, RFC 7235 §2.1), or from a bare token when bareOK.
func bearerToken(value string, bareOK bool) (string, error) {
	value = strings.TrimSpace(value)
	scheme, token, spaced := strings.Cut(value, " ")
	if !spaced {
		if strings.EqualFold(value, "Bearer") {
			return "", invalid("jwt: empty Bearer token")
		}
		if bareOK {
			return value, nil
		}
		return "", invalid("jwt: Authorization scheme must be Bearer")
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", invalid("jwt: Authorization scheme %q is not Bearer", clip(scheme))
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", invalid("jwt: empty Bearer token")
	}
	return token, nil
}

// authenticate verifies raw and maps its claims to an Identity, labelling
// any credential error with where the token came from.
func (j *JWT) authenticate(ctx context.Context, raw, source string) (Identity, bool, error) {
	id, err := j.verify(ctx, raw)
	if err != nil {
		var ie *invalidError
		if errors.As(err, &ie) {
			return Identity{}, false, invalidCredentials(source, err)
		}
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
	// The key lookup's own error is kept aside: the parser would bury it
	// under its generic "token is unverifiable".
	var keyErr error
	claims := jwt.MapClaims{}
	token, err := j.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		key, err := j.key(ctx, t)
		keyErr = err
		return key, err
	})
	switch {
	case keyErr != nil:
		return Identity{}, keyErr
	case err != nil:
		return Identity{}, j.describe(token, claims, err)
	}
	return j.identity(claims)
}

// key picks the key(s) that may verify t. The parser has already refused
// algorithms outside j.methods, so t's algorithm is one we have keys for.
func (j *JWT) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		if j.secret == nil {
			return nil, invalid("jwt: signing algorithm HS256 is not accepted")
		}
		return j.secret, nil
	}
	if j.jwks == nil {
		return nil, invalid("jwt: signing algorithm %s is not accepted", alg)
	}
	kid := ""
	if v, present := t.Header["kid"]; present {
		s, isString := v.(string)
		if !isString {
			return nil, invalid("jwt: kid header must be a string, got %s", jsonType(v))
		}
		kid = s
	}
	// Refetch when the kid is unknown or, for a token without kid, when no
	// key fits its algorithm: either may mean the provider rotated keys.
	set, err := j.jwks.keys(ctx, func(s *keySet) bool {
		keys, known := s.lookup(kid, alg)
		if kid == "" {
			return len(keys) > 0
		}
		return known
	})
	if err != nil {
		return nil, err
	}
	keys, known := set.lookup(kid, alg)
	switch {
	case kid != "" && !known:
		return nil, invalid("jwt: unknown key id %q", clip(kid))
	case kid != "" && len(keys) == 0:
		return nil, invalid("jwt: key %q cannot verify %s signatures", clip(kid), alg)
	case len(keys) == 0:
		return nil, invalid("jwt: no key for %s signatures", alg)
	case len(keys) == 1:
		return keys[0], nil
	}
	vs := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		vs.Keys[i] = k
	}
	return vs, nil
}

// describe turns a parser error into an invalidError that says what
// exactly is wrong. The claims it reads are only reported, never trusted:
// the parser has already refused the token.
func (j *JWT) describe(token *jwt.Token, claims jwt.MapClaims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid("jwt: malformed token: %v", err)
	case token != nil && token.Header != nil && !j.algAccepted(token.Header["alg"]):
		alg, _ := token.Header["alg"].(string)
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

func (j *JWT) algAccepted(v any) bool {
	alg, isString := v.(string)
	return isString && slices.Contains(j.methods, alg)
}

// claimProblems says which registered claims the parser refused, and with
// what values. What failed is read off golang-jwt's own error, never
// re-checked, so the wording cannot drift from the verdict; the claims only
// supply the values to quote. ErrTokenRequiredClaimMissing and
// ErrInvalidType do not say which claim they are about, so those go to the
// claims the parser checks that are absent or of the wrong type.
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
	if j.issuer != "" {
		switch iss, typeErr := claims.GetIssuer(); {
		case badType && typeErr != nil:
			msgs = append(msgs, "iss claim is not a string")
		case missing && iss == "":
			msgs = append(msgs, fmt.Sprintf("token has no issuer, want %q", j.issuer))
		case errors.Is(err, jwt.ErrTokenInvalidIssuer):
			msgs = append(msgs, fmt.Sprintf("issuer %q is not the expected %q", clip(iss), j.issuer))
		}
	}
	if j.audience != "" {
		switch aud, typeErr := claims.GetAudience(); {
		case badType && typeErr != nil:
			msgs = append(msgs, "aud claim is not a string or an array of strings")
		case missing && !slices.ContainsFunc(aud, func(a string) bool { return a != "" }):
			msgs = append(msgs, fmt.Sprintf("token has no audience, want %q", j.audience))
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			shown := make([]string, 0, 5)
			for _, a := range aud[:min(len(aud), 5)] {
				shown = append(shown, clip(a))
			}
			msgs = append(msgs, fmt.Sprintf("audience %q does not include the expected %q", shown, j.audience))
		}
	}
	return msgs
}

// identity maps verified claims to an Identity.
func (j *JWT) identity(claims jwt.MapClaims) (Identity, error) {
	raw, present := claims["sub"]
	if !present {
		return Identity{}, invalid("jwt: token has no sub claim")
	}
	sub, isString := raw.(string)
	if !isString {
		return Identity{}, invalid("jwt: sub claim must be a string, got %s", jsonType(raw))
	}
	if err := validateUserID(sub); err != nil {
		return Identity{}, invalid("jwt: sub claim %v", err)
	}
	name := ""
	if s, isString := claims[j.nameClaim].(string); isString {
		name = sanitizeName(s)
	}
	if name == "" {
		name = sanitizeName(sub)
	}
	id := Identity{UserID: sub, Name: name}
	// exp is required and validated by now; the check is for the type
	// system's sake.
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		// The token stays acceptable until exp+leeway, so the socket may
		// stay open as long: closing it earlier would refuse a token the
		// next handshake would accept.
		id.ExpiresAt = exp.Add(j.leeway)
	}
	return id, nil
}

// validateUserID reports why sub cannot be a user ID. Unlike a display
// name, an ID is never altered: two different subs must stay two users.
func validateUserID(sub string) error {
	switch {
	case sub == "":
		return errors.New("is empty")
	case !utf8.ValidString(sub):
		return errors.New("is not valid UTF-8")
	case utf8.RuneCountInString(sub) > MaxUserIDLength:
		return fmt.Errorf("has %d characters, at most %d allowed", utf8.RuneCountInString(sub), MaxUserIDLength)
	}
	for _, r := range sub {
		if unicode.IsControl(r) || unicode.IsSpace(r) && r != ' ' {
			return errors.New("contains control or line-break characters")
		}
	}
	return nil
}

// sanitizeName makes a display name safe to show: the same characters
// ValidateDevUser refuses (invalid UTF-8, controls, line breaks) become
// spaces, runs of spaces collapse, and the result is cut to MaxNameLength.
// The issuer is trusted, so a name is cleaned rather than the token refused.
func sanitizeName(s string) string {
	var b strings.Builder
	n := 0
	space := false
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			if n+1 >= MaxNameLength {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		if n >= MaxNameLength {
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
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

// invalidError is a client fault found while checking a token; callers
// wrap it in ErrInvalidCredentials together with where the token came from.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// invalidCredentials labels a client fault the way Dev does:
// "invalid credentials: <source>: <what>".
func invalidCredentials(source string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrInvalidCredentials, source, err)
}

// clip shortens a client-supplied string for an error message, so a hostile
// value cannot bloat logs.
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
