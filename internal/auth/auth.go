// Package auth authenticates requests to Owl's Lambda-compatible HTTP API.
//
// It owns the installation's credentials (a key pair and a bearer token kept in
// <dataDir>/credentials.json) and verifies the two ways clients prove they hold
// them: AWS Signature Version 4 (the AWS CLI, boto3 and aws-sdk-go-v2 sign for
// service "lambda" in any region) and "Authorization: Bearer <token>" (Owl's
// own CLI). The web console's browsers sign in with the token and then
// hold a session cookie instead (Sessions, session.go), with a CSRF token
// every state-changing request must carry. Failures are *lambdaerr.Error
// values that carry the AWS error code, message and HTTP status (403) the
// API server must answer with.
//
// Verification is against what came over the wire: the request target as the
// client sent it (r.RequestURI) and the exact body bytes, so handlers must
// give Authenticate the untouched request and the full body.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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
// *lambdaerr.Error (HTTP 403) wrapping one of the Err* sentinels.
func (a *Authenticator) Authenticate(r *http.Request, body []byte) (Principal, error) {
	h, err := authorization(r)
	if err != nil {
		return Principal{}, err
	}
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return a.bearer(strings.TrimSpace(token))
	}
	if strings.HasPrefix(h, algorithm+" ") {
		return a.sigV4(r, body, h)
	}
	return Principal{}, incomplete("Unsupported Authorization Type")
}

// AuthenticateHeaders authenticates r from its headers alone, before its
// body is read, so that an unauthenticated client cannot make the server
// read (and hold) a body.
//
// With a nil *Pending and a nil error the headers prove who sent r: a
// bearer token, or a SigV4 signature over a payload hash the request
// declares in X-Amz-Content-Sha256 (or UNSIGNED-PAYLOAD). The body must
// then still hash to what was declared: call CheckBody once it is read.
//
// A non-nil *Pending is a SigV4 request whose signature covers a payload
// hash it does not declare (what the AWS CLI, boto3 and aws-sdk-go-v2 send
// for Lambda): everything the headers can prove — the form, the scope, the
// signing time, a known access key — was checked, and Pending.Verify
// finishes with the body.
//
// Every failure is a *lambdaerr.Error, as from Authenticate.
func (a *Authenticator) AuthenticateHeaders(r *http.Request) (Principal, *Pending, error) {
	h, err := authorization(r)
	if err != nil {
		return Principal{}, nil, err
	}
	if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		p, err := a.bearer(strings.TrimSpace(token))
		return p, nil, err
	}
	if !strings.HasPrefix(h, algorithm+" ") {
		return Principal{}, nil, incomplete("Unsupported Authorization Type")
	}
	sr, err := a.sigV4Headers(r, h)
	if err != nil {
		return Principal{}, nil, err
	}
	declared := declaredPayloadHash(r)
	if declared == "" {
		return Principal{}, &Pending{a: a, r: r, sr: sr}, nil
	}
	bodyLen := 0
	if r.ContentLength > 0 {
		bodyLen = int(r.ContentLength)
	}
	p, err := a.sigV4Verify(r, sr, declared, bodyLen)
	return p, nil, err
}

// Pending is a SigV4 request whose headers were checked and whose
// signature covers its body (AuthenticateHeaders).
type Pending struct {
	a  *Authenticator
	r  *http.Request
	sr signedRequest
}

// Verify checks the signature over body, the request's complete body.
func (p *Pending) Verify(body []byte) (Principal, error) {
	return p.VerifySum(sha256.Sum256(body), int64(len(body)))
}

// VerifySum is Verify for a body that was streamed rather than held: sum
// is its SHA-256, size its length.
func (p *Pending) VerifySum(sum [sha256.Size]byte, size int64) (Principal, error) {
	hash, err := payloadHash(p.r, sum)
	if err != nil {
		return Principal{}, err
	}
	return p.a.sigV4Verify(p.r, p.sr, hash, int(size))
}

// CheckBody verifies, for a request AuthenticateHeaders authenticated,
// that body hashes to the X-Amz-Content-Sha256 it declared (nothing to
// check for a bearer token or UNSIGNED-PAYLOAD).
func CheckBody(r *http.Request, body []byte) error {
	if !NeedsBodySum(r) {
		return nil
	}
	return CheckBodySum(r, sha256.Sum256(body))
}

// NeedsBodySum reports whether CheckBody has a hash to compare for r, a
// request AuthenticateHeaders authenticated: a streamed body needs its
// SHA-256 only then (or for a Pending).
func NeedsBodySum(r *http.Request) bool {
	if !strings.HasPrefix(r.Header.Get("Authorization"), algorithm+" ") {
		return false
	}
	declared := declaredPayloadHash(r)
	return declared != "" && declared != unsignedPayload
}

// CheckBodySum is CheckBody for a streamed body whose SHA-256 is sum.
func CheckBodySum(r *http.Request, sum [sha256.Size]byte) error {
	if !NeedsBodySum(r) {
		return nil
	}
	if hex.EncodeToString(sum[:]) != declaredPayloadHash(r) {
		return invalidSignature("X-Amz-Content-Sha256 does not match the body")
	}
	return nil
}

// authorization returns the one Authorization header.
func authorization(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0 || values[0] == "":
		return "", missingToken()
	case len(values) > 1:
		return "", incomplete("Only one Authorization header may be present.")
	}
	return values[0], nil
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
