package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// sessionRequest is a request carrying cookie value id and, when csrf is
// not empty, the CSRF header.
func sessionRequest(method, id, csrf string) *http.Request {
	r := httptest.NewRequest(method, "/2015-03-31/functions/f/configuration", nil)
	if id != "" {
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: id})
	}
	if csrf != "" {
		r.Header.Set(CSRFHeader, csrf)
	}
	return r
}

// wantAuthError checks err is a 403 *lambdaerr.Error of code wrapping kind.
func wantAuthError(t *testing.T, err error, kind error, code string) {
	t.Helper()
	le := lambdaerr.As(err)
	if !errors.Is(err, kind) || le.Code != code || le.Status() != http.StatusForbidden {
		t.Fatalf("err = %v (code %s, status %d), want %v as %s 403", err, le.Code, le.Status(), kind, code)
	}
}

func newTestSessions(t *testing.T, ttl time.Duration) (*Sessions, *time.Time) {
	t.Helper()
	a, err := NewAuthenticator([]Credentials{testCreds})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSessions(a, ttl)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Now = func() time.Time { return now }
	return s, &now
}

// wantRefused checks s refuses r with a 403 of code wrapping kind.
func wantRefused(t *testing.T, s *Sessions, r *http.Request, kind error, code string) {
	t.Helper()
	_, err := s.Authenticate(r)
	wantAuthError(t, err, kind, code)
}

func mustSignIn(t *testing.T, s *Sessions) Session {
	t.Helper()
	ses, err := s.SignIn(testCreds.Token)
	if err != nil {
		t.Fatal(err)
	}
	return ses
}

func TestSessionSignIn(t *testing.T) {
	s, _ := newTestSessions(t, time.Hour)
	for _, tok := range []string{"", "wrong", testCreds.SecretAccessKey, testCreds.AccessKeyID} {
		if _, err := s.SignIn(tok); err == nil {
			t.Fatalf("SignIn(%q) succeeded", tok)
		} else {
			wantAuthError(t, err, ErrUnrecognizedClient, lambdaerr.UnrecognizedClient)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("refused sign-ins left %d sessions", s.Len())
	}
	a := mustSignIn(t, s)
	b := mustSignIn(t, s)
	if a.ID == b.ID || a.CSRF == b.CSRF || a.ID == a.CSRF || len(a.ID) < 40 || len(a.CSRF) < 40 {
		t.Fatalf("sessions not distinct random tokens: %+v %+v", a, b)
	}
	if a.ID == testCreds.Token || a.CSRF == testCreds.Token {
		t.Fatal("a session token is the bearer token")
	}
}

// A cookie authenticates nothing alone, reads included: every request
// needs the session's own CSRF token.
func TestSessionCSRF(t *testing.T) {
	s, _ := newTestSessions(t, time.Hour)
	ses := mustSignIn(t, s)
	other := mustSignIn(t, s)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, csrf := range []string{"", "wrong", other.CSRF, ses.ID} {
			wantRefused(t, s, sessionRequest(m, ses.ID, csrf), ErrCSRF, lambdaerr.AccessDenied)
		}
		if p, err := s.Authenticate(sessionRequest(m, ses.ID, ses.CSRF)); err != nil || p.Method != "session" {
			t.Fatalf("%s with the cookie and its CSRF token: %+v, %v", m, p, err)
		}
	}
	// The CSRF token without the cookie is nothing.
	wantRefused(t, s, sessionRequest(http.MethodPost, "", ses.CSRF), ErrSessionExpired, lambdaerr.UnrecognizedClient)
	wantRefused(t, s, sessionRequest(http.MethodGet, testCreds.Token, ses.CSRF), ErrSessionExpired, lambdaerr.UnrecognizedClient)
}

func TestSessionExpiresAndSignsOut(t *testing.T) {
	s, now := newTestSessions(t, time.Hour)
	ses := mustSignIn(t, s)
	if !ses.Expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires %v, want an hour from %v", ses.Expires, *now)
	}
	*now = now.Add(time.Hour - time.Second)
	if _, err := s.Authenticate(sessionRequest(http.MethodGet, ses.ID, ses.CSRF)); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	*now = now.Add(time.Second)
	wantRefused(t, s, sessionRequest(http.MethodGet, ses.ID, ses.CSRF), ErrSessionExpired, lambdaerr.UnrecognizedClient)
	if s.Len() != 0 {
		t.Fatalf("an expired session is still kept (%d)", s.Len())
	}

	ses = mustSignIn(t, s)
	s.SignOut(sessionRequest(http.MethodDelete, ses.ID, ses.CSRF))
	wantRefused(t, s, sessionRequest(http.MethodGet, ses.ID, ses.CSRF), ErrSessionExpired, lambdaerr.UnrecognizedClient)
}

// Sessions are bounded: past maxSessions the one expiring first goes.
func TestSessionsBounded(t *testing.T) {
	s, now := newTestSessions(t, time.Hour)
	first := mustSignIn(t, s)
	for range maxSessions {
		*now = now.Add(time.Millisecond)
		if _, err := s.SignIn(testCreds.Token); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != maxSessions {
		t.Fatalf("%d sessions kept, want %d", s.Len(), maxSessions)
	}
	wantRefused(t, s, sessionRequest(http.MethodGet, first.ID, first.CSRF), ErrSessionExpired, lambdaerr.UnrecognizedClient)
}
