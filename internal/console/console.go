// Package console serves Owl's web console: the static pages under
// /console/ (HTML, CSS and JavaScript modules embedded in the binary, no
// build step, nothing fetched from elsewhere) and the console's sign-in
// (/console/session), which trades the Owl token for a session cookie.
//
// The pages call the same API as the CLI: the session cookie is one more
// way to authenticate its operations (auth.Sessions, checked by
// lambdaapi), with a CSRF token the page sends in a header on every
// request; the token is handed out once, at sign-in, and kept in the
// tab's sessionStorage. Every answer here carries a strict
// Content-Security-Policy: scripts only from the console's own files (no
// inline script, no eval), no frames, no third-party anything.
package console

import (
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/lambdaerr"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every console response.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Handler serves /console/.
type Handler struct {
	sessions *auth.Sessions
	limiter  *limiter
	files    http.Handler
	logger   *slog.Logger
}

// New returns the console's handler; sign-ins start sessions in
// sessions, and wrong tokens are limited per client address by limit.
func New(sessions *auth.Sessions, limit SignInLimit, logger *slog.Logger) *Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has its directory
	}
	return &Handler{sessions: sessions, limiter: newLimiter(limit),
		files: http.StripPrefix("/console/", http.FileServerFS(sub)), logger: logger}
}

// Files is the console's embedded files (for page-weight figures).
func Files() fs.FS {
	sub, _ := fs.Sub(static, "static")
	return sub
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Cache-Control", "no-cache")
	if r.URL.Path == "/console/session" {
		h.session(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, lambdaerr.New(lambdaerr.UnknownOperation, "Unknown operation %s %s", r.Method, r.URL.Path))
		return
	}
	h.files.ServeHTTP(w, r)
}

// sessionAnswer is what the page learns of its session: its CSRF token
// at sign-in only, and when it expires.
type sessionAnswer struct {
	CSRF    string    `json:"csrf,omitempty"`
	Expires time.Time `json:"expires"`
}

// session is /console/session: POST {"token": ...} signs in, GET says
// whether the session of the cookie and CSRF token lives, DELETE signs
// out.
func (h *Handler) session(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		h.signIn(w, r)
	case http.MethodGet:
		// Like every console request, with the CSRF token the page kept
		// (it is never handed out again).
		if _, err := h.sessions.Authenticate(r); err != nil {
			writeError(w, err)
			return
		}
		ses, err := h.sessions.Lookup(r)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, sessionAnswer{Expires: ses.Expires})
	case http.MethodDelete:
		if _, err := h.sessions.Authenticate(r); err != nil {
			writeError(w, err)
			return
		}
		h.sessions.SignOut(r)
		http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, lambdaerr.New(lambdaerr.UnknownOperation, "Unknown operation %s %s", r.Method, r.URL.Path))
	}
}

// signIn trades the Owl token for a session. A page of another origin may
// not sign a browser in (login CSRF): a browser names the page's origin in
// Origin on every POST, which must then be this server's. An address that
// sent too many wrong tokens is refused (429, Retry-After) until its
// window passes, whatever it sends (limit.go).
func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		writeError(w, lambdaerr.New(lambdaerr.AccessDenied, "Sign-in from another origin (%s) is refused.", o))
		return
	}
	client := clientKey(r)
	if wait := h.limiter.blocked(client); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, lambdaerr.New(lambdaerr.TooManyRequests,
			"Too many wrong tokens from your address: sign-in is closed to it for %d s.", secs))
		return
	}
	var in struct {
		Token string `json:"token"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10+1))
	if err == nil && len(body) > 4<<10 {
		err = errors.New("longer than 4 KiB")
	}
	if err == nil {
		err = json.Unmarshal(body, &in)
	}
	if err != nil {
		writeError(w, lambdaerr.Wrap(lambdaerr.InvalidRequestContent, err, "The sign-in body must be JSON: {\"token\": \"...\"}."))
		return
	}
	ses, err := h.sessions.SignIn(strings.TrimSpace(in.Token))
	if err != nil {
		if lambdaerr.IsAuthentication(lambdaerr.As(err).Code) {
			// The line names the address, never what it sent.
			n := h.limiter.failed(client)
			h.logger.Warn("console sign-in with a wrong token", "remote", r.RemoteAddr, "failures", n,
				"closed", n >= h.limiter.limit.Failures, "window", h.limiter.limit.Window)
		}
		writeError(w, err)
		return
	}
	h.limiter.succeeded(client)
	h.logger.Info("console sign-in", "remote", r.RemoteAddr, "expires", ses.Expires)
	http.SetCookie(w, &http.Cookie{Name: auth.SessionCookie, Value: ses.ID, Path: "/", Expires: ses.Expires,
		MaxAge: int(h.sessions.TTL().Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure(r)})
	writeJSON(w, sessionAnswer{CSRF: ses.CSRF, Expires: ses.Expires})
}

// secure reports whether r came over TLS, to Owl or to a proxy in front
// of it: the cookie is then only ever sent over TLS.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// sameOrigin reports whether origin is r's own scheme and host.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host) && (u.Scheme == "http" || u.Scheme == "https")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers err as the API does: Lambda's error type in
// X-Amzn-ErrorType and a JSON body with its message (and, but for an
// authentication failure, who is at fault).
func writeError(w http.ResponseWriter, err error) {
	le := lambdaerr.As(err)
	body := map[string]string{"Type": "User", "message": le.Message}
	if lambdaerr.IsAuthentication(le.Code) {
		delete(body, "Type")
	}
	w.Header().Set("X-Amzn-ErrorType", le.Code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(le.Status())
	_ = json.NewEncoder(w).Encode(body)
}
