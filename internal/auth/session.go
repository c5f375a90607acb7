package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Browser sessions (the web console, internal/console): a signed-in
// browser holds a session cookie instead of the bearer token, and proves
// every request with the session's CSRF token in a header a cross-site
// page cannot set (CSRFHeader).
const (
	// SessionCookie is the session cookie's name.
	SessionCookie = "owl_session"
	// CSRFHeader carries the session's CSRF token on every request.
	CSRFHeader = "X-Owl-Csrf"
	// DefaultSessionTTL is how long a session lasts from sign-in.
	DefaultSessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept; the oldest goes first.
	maxSessions = 10000
)

// Errors of session authentication, for errors.Is; each comes wrapped in
// a *lambdaerr.Error (HTTP 403).
var (
	ErrSessionExpired = errors.New("console session expired or unknown")
	ErrCSRF           = errors.New("missing or wrong CSRF token")
)

// Session is one signed-in browser.
type Session struct {
	// ID is the cookie's value: the only copy is the browser's, the
	// server keeps its SHA-256.
	ID string
	// CSRF is the token the page sends in CSRFHeader.
	CSRF    string
	Expires time.Time
}

// Sessions keeps the console's sessions in memory: a restart signs every
// browser out. Sessions are checked against an Authenticator's tokens at
// sign-in only. It is safe for concurrent use.
type Sessions struct {
	authn *Authenticator
	ttl   time.Duration
	// Now is the clock; tests replace it before use.
	Now func() time.Time

	mu   sync.Mutex
	byID map[[sha256.Size]byte]session
}

type session struct {
	csrf    string
	expires time.Time
}

// NewSessions returns an empty session store whose sign-ins take authn's
// bearer tokens; sessions last ttl (DefaultSessionTTL when 0).
func NewSessions(authn *Authenticator, ttl time.Duration) *Sessions {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	return &Sessions{authn: authn, ttl: ttl, Now: time.Now, byID: make(map[[sha256.Size]byte]session)}
}

// TTL is how long a new session lasts.
func (s *Sessions) TTL() time.Duration { return s.ttl }

// SignIn starts a session for the holder of token, an Owl bearer token
// (`owl credentials`). A wrong token is the same 403 a wrong bearer
// token gets.
func (s *Sessions) SignIn(token string) (Session, error) {
	if _, err := s.authn.bearer(token); err != nil {
		return Session{}, err
	}
	id, err := randomToken()
	if err != nil {
		return Session{}, err
	}
	csrf, err := randomToken()
	if err != nil {
		return Session{}, err
	}
	now := s.Now()
	ses := Session{ID: id, CSRF: csrf, Expires: now.Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if len(s.byID) >= maxSessions {
		s.dropOldest()
	}
	s.byID[sha256.Sum256([]byte(id))] = session{csrf: csrf, expires: ses.Expires}
	return ses, nil
}

// Lookup returns the live session of r's cookie (its ID is left empty).
func (s *Sessions) Lookup(r *http.Request) (Session, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return Session{}, sessionGone("no session cookie")
	}
	key := sha256.Sum256([]byte(c.Value))
	now := s.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.byID[key]
	if !ok {
		return Session{}, sessionGone("unknown session")
	}
	if !now.Before(ses.expires) {
		delete(s.byID, key)
		return Session{}, sessionGone("session expired")
	}
	return Session{CSRF: ses.csrf, Expires: ses.expires}, nil
}

// Authenticate authenticates r by its session cookie: a live session and
// CSRFHeader equal to the session's CSRF token, on every request, reads
// included. The cookie alone authorizes nothing: a page that can make the
// browser send it (another site's, or a function URL's on this origin)
// cannot know the token, which the console keeps in its tab's
// sessionStorage. Every failure is a *lambdaerr.Error (403).
func (s *Sessions) Authenticate(r *http.Request) (Principal, error) {
	ses, err := s.Lookup(r)
	if err != nil {
		return Principal{}, err
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ses.CSRF)) != 1 {
		return Principal{}, &lambdaerr.Error{Code: lambdaerr.AccessDenied,
			Message: "A console request must carry the session's " + CSRFHeader + " header.",
			Err:     ErrCSRF}
	}
	return Principal{ID: "session", Method: "session"}, nil
}

// SignOut ends r's session, if any.
func (s *Sessions) SignOut(r *http.Request) {
	c, err := r.Cookie(SessionCookie)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(c.Value)))
}

// Len is the number of sessions kept, expired ones not yet dropped
// included.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// HasSessionCookie reports whether r carries a session cookie (and so
// could be authenticated by Sessions).
func HasSessionCookie(r *http.Request) bool {
	c, err := r.Cookie(SessionCookie)
	return err == nil && c.Value != ""
}

// expire drops the expired sessions; s.mu is held.
func (s *Sessions) expire(now time.Time) {
	for k, v := range s.byID {
		if !now.Before(v.expires) {
			delete(s.byID, k)
		}
	}
}

// dropOldest drops the session that expires first; s.mu is held.
func (s *Sessions) dropOldest() {
	var oldest [sha256.Size]byte
	var at time.Time
	for k, v := range s.byID {
		if at.IsZero() || v.expires.Before(at) {
			oldest, at = k, v.expires
		}
	}
	delete(s.byID, oldest)
}

func sessionGone(reason string) *lambdaerr.Error {
	return authError(ErrSessionExpired, lambdaerr.UnrecognizedClient,
		"The console session has expired or was signed out: sign in again.", reason)
}

// randomToken is 32 random bytes, base64url.
func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating a session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
