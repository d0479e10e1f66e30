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

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// maxJWKSBytes bounds a JWK Set read from a file or URL: real sets are a few
// KiB, and a hostile endpoint must not make the server buffer any body.
const maxJWKSBytes = 1 << 20

// RSA moduli below 2048 bits are unsafe for signatures; above 16384 bits,
// verification costs enough to make the key set a denial-of-service lever.
const minRSABits, maxRSABits = 2048, 16384

// verificationKey is a public key bound to the one algorithm it may verify,
// so that an RSA key never verifies an ECDSA token, nor the reverse.
type verificationKey struct {
	kid, alg string
	key      crypto.PublicKey
}

// keySet is immutable: a refetch replaces it whole, so readers need no lock.
type keySet struct{ keys []verificationKey }

// lookup returns the keys that may verify a token signed with alg under kid,
// and whether kid named any key at all ("unknown key" versus "wrong key
// type"). An empty kid matches every key, as issuers that publish a single
// key often omit it.
func (s *keySet) lookup(kid, alg string) (keys []jwt.VerificationKey, kidKnown bool) {
	for _, k := range s.keys {
		if kid == "" || k.kid == kid {
			kidKnown = true
			if k.alg == alg {
				keys = append(keys, k.key)
			}
		}
	}
	return keys, kidKnown
}

// readJWKS reads a JWK Set of at most maxJWKSBytes from r and parses it.
func readJWKS(r io.Reader) (*keySet, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWK Set is larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(data)
}

// parseJWKS keeps the keys of a JWK Set that can verify signatures. Real sets
// mix in other keys, so unusable ones are skipped; only a set with no usable
// key is an error, and it says why each key was skipped.
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
	switch {
	case len(set.keys) > 0:
		return set, nil
	case len(skipped) == 0:
		return nil, errors.New("JWK Set has no keys")
	}
	return nil, fmt.Errorf("JWK Set has no usable keys (%s)", strings.Join(skipped, "; "))
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518 §6) needed to verify
// RS256 and ECDSA signatures, plus D, private material that has no place in
// a verification set.
type jwk struct {
	Kty, Kid, Use, Alg, N, E, Crv, X, Y, D string
	KeyOps                                 []string `json:"key_ops"`
}

// parseJWK turns one JWK into a verification key, or says why it cannot be.
func parseJWK(raw json.RawMessage) (_ verificationKey, err error) {
	var k jwk
	if err := json.Unmarshal(raw, &k); err != nil {
		return verificationKey{}, fmt.Errorf("not a JWK: %v", err)
	}
	defer func() {
		if err != nil && k.Kid != "" {
			err = fmt.Errorf("kid %q: %w", clip(k.Kid), err)
		}
	}()
	var (
		alg string
		pub crypto.PublicKey
	)
	switch {
	case k.Use != "" && k.Use != "sig":
		return verificationKey{}, fmt.Errorf("use %q is not \"sig\"", clip(k.Use))
	case k.KeyOps != nil && !slices.Contains(k.KeyOps, "verify"):
		return verificationKey{}, errors.New(`key_ops does not include "verify"`)
	case k.D != "":
		return verificationKey{}, errors.New(`contains private key material ("d"); publish only public keys`)
	case k.Kty == "RSA":
		alg, pub, err = k.rsaKey()
	case k.Kty == "EC":
		alg, pub, err = k.ecKey()
	case k.Kty == "":
		return verificationKey{}, errors.New(`no "kty"`)
	default:
		return verificationKey{}, fmt.Errorf("kty %q is not supported (want RSA or EC)", clip(k.Kty))
	}
	switch {
	case err != nil:
		return verificationKey{}, err
	case k.Alg != "" && k.Alg != alg: // a JWK's alg restricts the key (RFC 7517 §4.4)
		return verificationKey{}, fmt.Errorf("alg %q is not supported for this key (want %s)", clip(k.Alg), alg)
	}
	return verificationKey{kid: k.Kid, alg: alg, key: pub}, nil
}

// rsaKey decodes an RSA public key, for RS256 only: it is what identity
// providers publish, and every extra algorithm is one more to get wrong.
func (k *jwk) rsaKey() (string, crypto.PublicKey, error) {
	nb, err := decodeB64URL(k.N)
	if err != nil || len(nb) == 0 {
		return "", nil, errors.New(`RSA key has a missing or invalid "n"`)
	}
	eb, err := decodeB64URL(k.E)
	if err != nil || len(eb) == 0 || len(eb) > 4 {
		return "", nil, errors.New(`RSA key has a missing or invalid "e"`)
	}
	n, e := new(big.Int).SetBytes(nb), int(new(big.Int).SetBytes(eb).Int64())
	if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
		return "", nil, fmt.Errorf("RSA key has %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	// crypto/rsa verifies with no other key (an exponent above 2^31-1 or
	// an even modulus): refuse it here, with the reason, rather than let
	// every token it should verify read "signature is invalid".
	if e < 3 || e%2 == 0 || e > 1<<31-1 {
		return "", nil, fmt.Errorf("RSA key has invalid public exponent %d", e)
	}
	if n.Bit(0) == 0 {
		return "", nil, errors.New("RSA key has an even modulus")
	}
	return "RS256", &rsa.PublicKey{N: n, E: e}, nil
}

// ecKey decodes an ECDSA public key; its curve names its algorithm.
func (k *jwk) ecKey() (string, crypto.PublicKey, error) {
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
	// Coordinates are the full field size, left-padded (RFC 7518 §6.2.1.2).
	if errX != nil || errY != nil || len(x) != size || len(y) != size {
		return "", nil, fmt.Errorf(`EC key has missing or invalid "x"/"y" (want %d bytes each)`, size)
	}
	// Points off the curve are refused, closing invalid-curve attacks.
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
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
// Nothing refreshes in the background: a refetch happens on the request that
// needs one, when a token names an unknown kid, its signature fails with the
// cached keys, or the set is older than ttl.
// Concurrent callers share one refetch through flight. The refetch belongs
// to none of them: it runs detached from their cancellation, on flight's
// goroutine, which outlives the callers by at most fetchTimeout (so JWT
// needs no Close to stop it), while each caller stops waiting when its own
// context ends. Every fetch started counts, and fetches are at least
// minRefresh apart, so a burst of made-up kids costs the provider at most
// one request per minRefresh, however the clients that sent them hang up
// or time out.
type jwksSource struct {
	url                           *url.URL // nil for a file
	client                        *http.Client
	fetchTimeout, minRefresh, ttl time.Duration
	now                           func() time.Time
	flight                        singleflight.Group
	joined                        func() // called by each caller waiting on a refetch; for tests

	mu          sync.Mutex
	set         *keySet   // latest good set; nil if no fetch ever succeeded
	fetchedAt   time.Time // when set was fetched
	lastAttempt time.Time // when the latest counted fetch started
	lastErr     error     // why the latest fetch failed, nil if it succeeded
	fetches     int       // fetches started, for tests
}

// keys returns a key set, refetching when the cached one is stale or not
// usable and the rate bound allows. A failed refetch leaves the cached set
// serving, so a provider outage logs nobody out: the error is non-nil only
// when there is no set at all, or ctx ended while waiting.
func (s *jwksSource) keys(ctx context.Context, usable func(*keySet) bool) (*keySet, error) {
	if s.url != nil && s.wantsRefetch(usable) {
		// Detached: were the fetch cut when the caller that happened to
		// start it hung up, every hang-up would buy another fetch. Values
		// are kept; fetch bounds it by fetchTimeout.
		fetchCtx := context.WithoutCancel(ctx)
		ch := s.flight.DoChan("", func() (any, error) { s.refetch(fetchCtx); return nil, nil })
		if s.joined != nil {
			s.joined()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			// A set that is only past its ttl still verifies: the caller's
			// time ran out, not the keys'.
			if set := s.usableSet(usable); set != nil {
				return set, nil
			}
			return nil, fmt.Errorf("jwt: fetching JWKS from %s: %w", s.url.Redacted(), ctx.Err())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		return nil, fmt.Errorf("jwt: no verification keys: %w", s.lastErr)
	}
	return s.set, nil
}

// usableSet returns the cached set if there is one and usable accepts it.
func (s *jwksSource) usableSet(usable func(*keySet) bool) *keySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil || !usable(s.set) {
		return nil
	}
	return s.set
}

func (s *jwksSource) wantsRefetch(usable func(*keySet) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set == nil || s.now().Sub(s.fetchedAt) >= s.ttl || !usable(s.set)
}

// refetch fetches the set within ctx unless the latest attempt was under
// minRefresh ago. Every fetch started counts against minRefresh, whether it
// succeeds, fails, or ctx cuts it: a provider slower than the callers'
// deadlines (a WebSocket's connection_init has a few seconds) must not be
// asked again by every caller. keys runs it detached from its callers, so
// only NewJWT's context, at start-up, can cut it.
//
// It reports whether ctx was cancelled, so that NewJWT reports its
// context's end rather than a failed fetch.
func (s *jwksSource) refetch(ctx context.Context) (cancelled bool) {
	s.mu.Lock()
	now := s.now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.minRefresh {
		s.mu.Unlock()
		return false
	}
	s.lastAttempt = now
	s.fetches++
	s.mu.Unlock()

	set, err := s.fetch(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastErr = err
		return errors.Is(ctx.Err(), context.Canceled)
	}
	s.set, s.fetchedAt, s.lastErr = set, s.now(), nil
	return false
}

// fetch GETs and parses the set, within fetchTimeout of ctx.
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
	if uerr, ok := errors.AsType[*url.Error](err); ok {
		err = uerr.Err // it would repeat the method and URL
	}
	if err != nil {
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwt: fetching JWKS from %s: HTTP status %s", where, resp.Status)
	}
	set, err := readJWKS(resp.Body)
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
