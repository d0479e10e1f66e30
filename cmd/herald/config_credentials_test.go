package main

import (
	"io"
	"strings"
	"testing"
)

// TestConfigErrorsHideCredentialsHoweverWritten: a configuration error,
// which goes to the log, shows no part of a password or token a URL
// carries, however the error writes the URL: re-escaped as url.URL writes
// it back ("!" as "%21", "(" as "%28", "*" as "%2A"), as for a --jwks-url
// whose host is missing (https://alice:${PASS}@${IDP_HOST}/jwks with
// IDP_HOST unset), or with an "@" in the credential, valid in a URL's
// user part, which ends at the last "@".
func TestConfigErrorsHideCredentialsHoweverWritten(t *testing.T) {
	jwks := func(u string) []string { return []string{"--auth", "jwt", "--jwks-url", u} }
	for _, tt := range []struct {
		name   string
		args   []string
		want   string // in the error: it is the error we expect
		secret string // not in the error
	}{
		{"jwks password, no host", jwks("https://alice:s3cret@/jwks"), "--jwks-url (HERALD_JWKS_URL)", "s3cret"},
		{"jwks password with !, no host", jwks("https://alice:s3cret!pw@/jwks"), "--jwks-url (HERALD_JWKS_URL)", "s3cret"},
		{"jwks password with (), no host", jwks("https://alice:(s3cret)@/jwks"), "--jwks-url (HERALD_JWKS_URL)", "s3cret"},
		{"jwks token with *, no host", jwks("https://t0ken*s3cret@/jwks"), "--jwks-url (HERALD_JWKS_URL)", "s3cret"},
		{"nats password with an @", []string{"--nats-url", "alice:pass@w0rd-s3cret@nats:4222"}, "is not a URL", "s3cret"},
		{"nats token with an @", []string{"--nats-url", "t0ken@s3cret-value@nats:4222"}, "is not a URL", "s3cret"},
		// An unescaped "#", "?" or "/" ends the host where it stands: url.Parse
		// quotes the password's start as a port, or takes it for the host.
		{"nats password with a #", []string{"--nats-url", "nats://alice:s3cret#pw@nats:4222"}, "write them %2F, %3F and %23", "s3cret"},
		{"nats password with a ?", []string{"--nats-url", "nats://alice:s3cret?pw@nats:4222"}, "write them %2F, %3F and %23", "s3cret"},
		{"nats token with a /", []string{"--nats-url", "nats://s3cret/t0ken@nats:4222"}, "write them %2F, %3F and %23", "s3cret"},
		{"nats token with a #", []string{"--nats-url", "nats://s3cret#t0ken@nats:4222"}, "write them %2F, %3F and %23", "s3cret"},
		{"nats password, bad port", []string{"--nats-url", "nats://alice:s3cret@nats:42x2"}, "is not a URL: invalid port", "s3cret"},
		{"jwks password with a #", jwks("https://alice:s3cret#pw@idp.example/jwks"), `has a "#"`, "s3cret"},
		{"jwks password with a ?", jwks("https://alice:s3cret?pw@idp.example/jwks"), "is not a URL: invalid port after host", "s3cret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), tt.secret) {
				t.Fatalf("the configuration error shows the credential: %v", err)
			}
		})
	}
}

// TestHideCredentials: what hideCredentials makes of a message quoting
// the URLs of a configuration, as written and as url.URL writes them
// back. A token or password holding an unescaped "/" or "#" (a base64
// token, a password) is hidden whole, the user part being read up to
// the last "@"; with no password or token, the message is left as it is.
func TestHideCredentials(t *testing.T) {
	for _, tt := range []struct {
		name      string
		c         config
		msg, want string
	}{
		{"password as written", config{NATSURLs: []string{"nats://alice:s3cret@nats:4222"}},
			`dial nats://alice:s3cret@nats:4222 failed`, `dial nats://alice:xxxxx@nats:4222 failed`},
		{"token as written", config{NATSURLs: []string{"nats://s3cret@nats:4222"}},
			`dial nats://s3cret@nats:4222 failed`, `dial nats://xxxxx@nats:4222 failed`},
		{"password re-escaped", config{JWKSURL: "https://alice:s3cret!pw@/jwks"},
			`"https://alice:s3cret%21pw@/jwks" is not an absolute URL`, `"https://alice:xxxxx@/jwks" is not an absolute URL`},
		{"token re-escaped", config{JWKSURL: "https://t0ken*s3cret@/jwks"},
			`"https://t0ken%2As3cret@/jwks" is not an absolute URL`, `"https://xxxxx@/jwks" is not an absolute URL`},
		{"user name re-escaped", config{JWKSURL: "https://al!ce:s3cret!@/jwks"},
			`"https://al%21ce:s3cret%21@/jwks"`, `"https://al%21ce:xxxxx@/jwks"`},
		{"password quoted", config{NATSURLs: []string{`nats://alice:s3"cret@nats:4222`}},
			`"nats://alice:s3\"cret@nats:4222" is not a URL`, `"nats://alice:xxxxx@nats:4222" is not a URL`},
		{"token with an unescaped /", config{NATSURLs: []string{"nats://s3cret/t0ken+x@nats:4222"}},
			`dial nats://s3cret/t0ken+x@nats:4222 failed`, `dial nats://xxxxx@nats:4222 failed`},
		{"empty user part", config{NATSURLs: []string{"nats://@nats:4222"}},
			`write to user@example.com failed`, `write to user@example.com failed`},
		{"empty password", config{NATSURLs: []string{"nats://alice:@nats:4222"}},
			`dial nats://alice:@nats:4222 failed`, `dial nats://alice:@nats:4222 failed`},
		{"no credentials", config{NATSURLs: []string{"nats://nats:4222"}, JWKSURL: "https://idp.example/jwks"},
			`dial nats://nats:4222 failed`, `dial nats://nats:4222 failed`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.hideCredentials(tt.msg); got != tt.want {
				t.Fatalf("hideCredentials(%q) = %q, want %q", tt.msg, got, tt.want)
			}
		})
	}
}
