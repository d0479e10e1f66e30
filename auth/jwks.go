package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// maxJWKSBytes bounds a JWK Set read from a file or URL. Real sets hold a
// handful of keys (a few KiB); the bound keeps a misconfigured or hostile
// endpoint from making the server buffer an arbitrary body.
const maxJWKSBytes = 1 << 20

// RSA modulus bounds. Below 2048 bits RSA is no longer considered safe for
// signatures; above 16384 bits verification gets expensive enough for a key
// set to become a denial-of-service lever.
const (
	minRSABits = 2048
	maxRSABits = 16384
)

// jwk is one JSON Web Key (RFC 7517) as it appears in a set. Only the members
// needed to verify RS256 and ECDSA signatures are decoded.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	// RSA public key (RFC 7518 §6.3.1).
	N string `json:"n"`
	E string `json:"e"`
	// EC public key (RFC 7518 §6.2.1).
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	// D is private key material for both RSA and EC keys; a set that carries
	// it is a leak, not a verification set.
	D string `json:"d"`
}

// verificationKey is a public key together with the one algorithm it may
// verify. Binding the algorithm to the key (rather than trusting the token's
// alg header alone) is what keeps an RSA key from ever being used for an
// ECDSA token and vice versa.
type verificationKey struct {
	kid string
	alg string
	key crypto.PublicKey
}

// keySet is an immutable set of verification keys; a refresh replaces the
// whole set, so readers never need a lock once they hold one.
type keySet struct {
	keys []verificationKey
}

// lookup returns the keys that may verify a token signed with alg under kid.
// An empty kid matches every key of the right algorithm, because some issuers
// omit kid when they publish a single key. It reports whether kid named any
// key at all, so callers can tell "unknown key" from "wrong key type".
func (s *keySet) lookup(kid, alg string) (keys []any, kidKnown bool) {
	if s == nil {
		return nil, false
	}
	for _, k := range s.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		kidKnown = true
		if k.alg == alg {
			keys = append(keys, k.key)
		}
	}
	return keys, kidKnown
}

// parseJWKS parses a JWK Set and keeps the keys usable for signature
// verification. Unusable keys (other key types, encryption keys, weak RSA
// moduli, ...) are skipped, since real sets often mix them in; only a set
// with no usable key at all is an error, and that error says why each key
// was skipped.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %v", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`not a JWK Set: no "keys" array`)
	}
	set := &keySet{}
	var skipped []string
	for i, raw := range *doc.Keys {
		k, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		set.keys = append(set.keys, k)
	}
	if len(set.keys) == 0 {
		if len(skipped) == 0 {
			return nil, errors.New("JWK Set has no keys")
		}
		return nil, fmt.Errorf("JWK Set has no usable keys (%s)", strings.Join(skipped, "; "))
	}
	return set, nil
}

// parseJWK turns one JWK into a verification key, or says why it cannot be
// one.
func parseJWK(raw json.RawMessage) (verificationKey, error) {
	var k jwk
	if err := json.Unmarshal(raw, &k); err != nil {
		return verificationKey{}, fmt.Errorf("not a JWK: %v", err)
	}
	id := ""
	if k.Kid != "" {
		id = fmt.Sprintf("kid %q: ", clip(k.Kid))
	}
	if k.Use != "" && k.Use != "sig" {
		return verificationKey{}, fmt.Errorf("%suse %q is not \"sig\"", id, clip(k.Use))
	}
	if k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify") {
		return verificationKey{}, fmt.Errorf("%skey_ops does not include \"verify\"", id)
	}
	if k.D != "" {
		return verificationKey{}, fmt.Errorf("%scontains private key material (\"d\"); publish only public keys", id)
	}
	var (
		alg string
		pub crypto.PublicKey
		err error
	)
	switch k.Kty {
	case "RSA":
		alg, pub, err = parseRSAJWK(k)
	case "EC":
		alg, pub, err = parseECJWK(k)
	case "":
		err = errors.New(`no "kty"`)
	default:
		err = fmt.Errorf("kty %q is not supported (want RSA or EC)", clip(k.Kty))
	}
	if err != nil {
		return verificationKey{}, fmt.Errorf("%s%v", id, err)
	}
	// A JWK's alg, when present, restricts the key to that algorithm
	// (RFC 7517 §4.4); honour it rather than widen it.
	if k.Alg != "" && k.Alg != alg {
		return verificationKey{}, fmt.Errorf("%salg %q is not supported for this key (want %s)", id, clip(k.Alg), alg)
	}
	return verificationKey{kid: k.Kid, alg: alg, key: pub}, nil
}

// parseRSAJWK decodes an RSA public key. Only RS256 is accepted for RSA keys:
// it is what identity providers publish by default, and every extra
// algorithm is one more thing to get wrong.
func parseRSAJWK(k jwk) (string, crypto.PublicKey, error) {
	nb, err := decodeB64URL(k.N)
	if err != nil || len(nb) == 0 {
		return "", nil, errors.New(`RSA key has a missing or invalid "n"`)
	}
	eb, err := decodeB64URL(k.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return "", nil, errors.New(`RSA key has a missing or invalid "e"`)
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
		return "", nil, fmt.Errorf("RSA key has %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	e := 0
	for _, b := range eb {
		e = e<<8 | int(b)
	}
	if e < 3 || e%2 == 0 {
		return "", nil, fmt.Errorf("RSA key has invalid public exponent %d", e)
	}
	return "RS256", &rsa.PublicKey{N: n, E: e}, nil
}

// parseECJWK decodes an ECDSA public key; the curve decides the algorithm,
// as ES256/ES384/ES512 each name exactly one curve.
func parseECJWK(k jwk) (string, crypto.PublicKey, error) {
	var (
		curve elliptic.Curve
		alg   string
	)
	switch k.Crv {
	case "P-256":
		curve, alg = elliptic.P256(), "ES256"
	case "P-384":
		curve, alg = elliptic.P384(), "ES384"
	case "P-521":
		curve, alg = elliptic.P521(), "ES512"
	default:
		return "", nil, fmt.Errorf("EC curve %q is not supported (want P-256, P-384 or P-521)", clip(k.Crv))
	}
	size := (curve.Params().BitSize + 7) / 8
	x, errX := decodeB64URL(k.X)
	y, errY := decodeB64URL(k.Y)
	// RFC 7518 §6.2.1.2: coordinates are the full field size, left-padded.
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return "", nil, fmt.Errorf(`EC key has missing or invalid "x"/"y" (want %d bytes each)`, size)
	}
	point := make([]byte, 0, 1+2*size)
	point = append(point, 4) // SEC 1 uncompressed point
	point = append(point, x...)
	point = append(point, y...)
	// ParseUncompressedPublicKey rejects points off the curve, which would
	// otherwise open invalid-curve attacks.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return "", nil, fmt.Errorf("EC key is invalid: %v", err)
	}
	return alg, pub, nil
}

// decodeB64URL decodes base64url, tolerating the padding that RFC 7515 says
// to omit but some publishers add.
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// jwksSource holds the keys of a JWK Set, from a file (read once) or a URL
// (fetched at start, then refetched on demand).
//
// There is no background refresher: a refetch happens on the request that
// needs it — when a token names an unknown kid, or when the set is older
// than ttl — so an idle server makes no requests. Concurrent callers that
// need a refetch share one through a singleflight.Group, and refetches are
// at least minRefresh apart, so a burst of tokens with made-up kids costs
// the identity provider at most one request per minRefresh.
type jwksSource struct {
	url          *url.URL // nil for a static set (file)
	client       *http.Client
	fetchTimeout time.Duration
	minRefresh   time.Duration
	ttl          time.Duration
	now          func() time.Time

	// flight runs one refetch at a time, on a goroutine of its own that
	// lives no longer than the context of the caller that started it (and
	// fetchTimeout); every caller that needs a refetch meanwhile waits for
	// that one.
	flight singleflight.Group
	// joined, when set, is called by each caller once it waits on a
	// refetch; tests use it to know that callers share one.
	joined func()

	mu          sync.Mutex
	set         *keySet   // latest good set; nil only if none was ever fetched
	fetchedAt   time.Time // when set was fetched
	lastAttempt time.Time // when the latest counted fetch started
	lastErr     error     // why the latest fetch failed, nil if it succeeded
	fetches     int       // fetches started, for tests
}

// keys returns a key set for which usable(set) holds if one can be had,
// refetching the URL when the cached set is stale or unusable and the rate
// bound allows. It keeps serving the cached set when a refetch fails, so an
// identity provider outage does not log everybody out; the error is non-nil
// only when there is no set at all or ctx ended while waiting.
func (s *jwksSource) keys(ctx context.Context, usable func(*keySet) bool) (*keySet, error) {
	for s.url != nil && s.wantsRefetch(usable) {
		ch := s.flight.DoChan("", func() (any, error) { return s.refetch(ctx), nil })
		if s.joined != nil {
			s.joined()
		}
		abandoned := false
		select {
		case res := <-ch:
			abandoned = res.Val.(bool)
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("jwt: fetching JWKS from %s: %w", s.url.Redacted(), err)
		}
		if !abandoned {
			break
		}
		// The caller whose context the refetch ran under went away; rather
		// than suffer for another client's disconnect, fetch for ourselves.
	}
	s.mu.Lock()
	set, lastErr := s.set, s.lastErr
	s.mu.Unlock()
	if set == nil {
		return nil, fmt.Errorf("jwt: no verification keys: %w", lastErr)
	}
	return set, nil
}

// wantsRefetch reports whether the cached set is missing, older than ttl,
// or not usable.
func (s *jwksSource) wantsRefetch(usable func(*keySet) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set == nil || s.now().Sub(s.fetchedAt) >= s.ttl || !usable(s.set)
}

// refetch fetches the set unless the latest attempt was less than
// minRefresh ago, and reports whether the fetch was abandoned because ctx
// ended: such an attempt does not count against the rate bound, and its
// failure is not recorded as the provider's.
func (s *jwksSource) refetch(ctx context.Context) (abandoned bool) {
	s.mu.Lock()
	prevAttempt, now := s.lastAttempt, s.now()
	if !prevAttempt.IsZero() && now.Sub(prevAttempt) < s.minRefresh {
		s.mu.Unlock()
		return false
	}
	s.lastAttempt = now
	s.fetches++
	s.mu.Unlock()

	set, err := s.fetch(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.set, s.fetchedAt, s.lastErr = set, s.now(), nil
	case ctx.Err() != nil:
		s.lastAttempt = prevAttempt
		return true
	default:
		s.lastErr = err
	}
	return false
}

// fetch GETs and parses the key set, within fetchTimeout of ctx.
func (s *jwksSource) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	where := s.url.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: %w", where, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error repeats the method and URL; say them once.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: HTTP status %s", where, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: reading body: %w", where, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("jwt: JWKS from %s is larger than %d bytes", where, maxJWKSBytes)
	}
	set, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwt: JWKS from %s: %w", where, err)
	}
	return set, nil
}

// fetchCount reports how many fetches were started; tests assert on it.
func (s *jwksSource) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}
