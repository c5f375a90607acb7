// Package auth authenticates requests to Owl's Lambda-compatible HTTP API.
//
// It owns the installation's credentials (a key pair and a bearer token kept in
// <dataDir>/credentials.json) and verifies the two ways clients prove they hold
// them: AWS Signature Version 4 (the AWS CLI, boto3 and aws-sdk-go-v2 sign for
// service "lambda" in any region) and "Authorization: Bearer <token>" (Owl's
// own CLI). Failures are *Error values that carry the AWS error code,
// message and HTTP status the API server must answer with.
//
// Verification is against what came over the wire: the request target as the
// client sent it (r.RequestURI) and the exact body bytes, so handlers must
// give Authenticate the untouched request and the full body.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// DefaultMaxClockSkew is how far a signature's time may be from the server's
// clock, as most AWS services allow.
const DefaultMaxClockSkew = 15 * time.Minute

// Principal is who a request was authenticated as.
type Principal struct {
	// ID is the access key id that signed a SigV4 request, or "token" for a
	// bearer token.
	ID string
	// Method is "sigv4" or "bearer".
	Method string
	// Region is the region from the SigV4 credential scope; empty for bearer.
	Region string
}

// Authenticator verifies requests against a fixed set of credentials. It is
// safe for concurrent use once its fields are set.
type Authenticator struct {
	// MaxClockSkew bounds |server time - signing time| for SigV4 requests.
	MaxClockSkew time.Duration
	// Now is the server clock; tests replace it.
	Now func() time.Time

	secrets map[string]string // access key id -> secret access key
	tokens  [][sha256.Size]byte
}

// NewAuthenticator builds an Authenticator that accepts every key pair and
// token in creds. A Credentials may carry a key pair, a token, or both, but a
// key pair must be complete and at least one credential must be present.
func NewAuthenticator(creds []Credentials) (*Authenticator, error) {
	a := &Authenticator{
		MaxClockSkew: DefaultMaxClockSkew,
		Now:          time.Now,
		secrets:      make(map[string]string),
	}
	for i, c := range creds {
		if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
			return nil, fmt.Errorf("credentials %d: access key id and secret access key must be set together", i)
		}
		if c.AccessKeyID != "" {
			if s, ok := a.secrets[c.AccessKeyID]; ok && s != c.SecretAccessKey {
				return nil, fmt.Errorf("credentials %d: access key id %q is listed twice with different secrets", i, c.AccessKeyID)
			}
			a.secrets[c.AccessKeyID] = c.SecretAccessKey
		}
		if c.Token != "" {
			a.tokens = append(a.tokens, sha256.Sum256([]byte(c.Token)))
		}
	}
	if len(a.secrets) == 0 && len(a.tokens) == 0 {
		return nil, errors.New("no credentials: at least one key pair or token is required")
	}
	return a, nil
}

// Authenticate checks r's Authorization header. body is the complete request
// body, already read by the caller; SigV4 covers its hash. Every failure is an
// *Error (HTTP 403) wrapping one of the Err* sentinels.
func (a *Authenticator) Authenticate(r *http.Request, body []byte) (Principal, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0 || values[0] == "":
		return Principal{}, missingToken()
	case len(values) > 1:
		return Principal{}, incomplete("Only one Authorization header may be present.")
	}
	h := values[0]
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return a.bearer(strings.TrimSpace(token))
	}
	if strings.HasPrefix(h, algorithm+" ") {
		return a.sigV4(r, body, h)
	}
	return Principal{}, incomplete("Unsupported Authorization Type")
}

// bearer compares token with every known token in constant time. Comparing
// SHA-256 digests keeps the token's length from leaking through timing too.
func (a *Authenticator) bearer(token string) (Principal, error) {
	sum := sha256.Sum256([]byte(token))
	match := 0
	for _, t := range a.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	if token == "" || match == 0 {
		return Principal{}, unrecognizedClient("unknown bearer token")
	}
	return Principal{ID: "token", Method: "bearer"}, nil
}

func (a *Authenticator) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}
