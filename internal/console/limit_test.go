package console

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestLimiterWindow: an address is closed after its Failures wrong
// tokens, for what is left of the window that began at its first
// failure, then open again with a fresh count; other addresses are not
// affected; a success forgets the failures before it.
func TestLimiterWindow(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := newLimiter(SignInLimit{Failures: 3, Window: time.Minute})
	l.now = c.now
	a, b := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32")

	for i := 1; i <= 3; i++ {
		if wait := l.blocked(a); wait != 0 {
			t.Fatalf("closed after %d failures (limit 3): %v", i-1, wait)
		}
		if n := l.failed(a); n != i {
			t.Fatalf("failure %d counted as %d", i, n)
		}
		c.t = c.t.Add(10 * time.Second)
	}
	// 30 s after the first failure: closed for the 30 s left.
	if wait := l.blocked(a); wait != 30*time.Second {
		t.Errorf("after 3 failures: closed for %v, want 30s", wait)
	}
	if wait := l.blocked(b); wait != 0 {
		t.Errorf("another address is closed too: %v", wait)
	}
	c.t = c.t.Add(29 * time.Second)
	if wait := l.blocked(a); wait != time.Second {
		t.Errorf("a second before the window ends: closed for %v, want 1s", wait)
	}
	c.t = c.t.Add(time.Second)
	if wait := l.blocked(a); wait != 0 {
		t.Errorf("the window has passed, still closed for %v", wait)
	}
	if n := l.failed(a); n != 1 {
		t.Errorf("the first failure of a new window counted as %d", n)
	}

	// A success starts afresh.
	l.failed(b)
	l.failed(b)
	l.succeeded(b)
	if n := l.failed(b); n != 1 {
		t.Errorf("after a success: failure counted as %d, want 1", n)
	}
}

// TestLimiterBounded: the limiter remembers at most maxLimited
// addresses; when every one is inside its window a new address is
// refused (failing closed), and once their windows pass it is let in.
func TestLimiterBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)}
	l := newLimiter(SignInLimit{Failures: 5, Window: time.Minute})
	l.now = c.now
	for i := 0; i < maxLimited; i++ {
		l.failed(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
	}
	fresh := netip.MustParsePrefix("203.0.113.9/32")
	if wait := l.blocked(fresh); wait == 0 {
		t.Errorf("a new address was let in with %d addresses failing", maxLimited)
	}
	c.t = c.t.Add(time.Minute)
	if wait := l.blocked(fresh); wait != 0 {
		t.Errorf("after every window passed a new address waits %v", wait)
	}
	if len(l.clients) != 0 {
		t.Errorf("%d expired addresses kept", len(l.clients))
	}
}

// TestClientKey: IPv4 addresses are themselves, IPv6 ones their /64, an
// IPv4-mapped IPv6 address its IPv4 one.
func TestClientKey(t *testing.T) {
	for remote, want := range map[string]string{
		"192.0.2.7:5555":                 "192.0.2.7/32",
		"[2001:db8:1:2:aaaa::1]:443":     "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443":     "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:80":          "192.0.2.7/32",
		"[2001:db8:1:3::1]:1":            "2001:db8:1:3::/64",
		"not an address":                 "invalid Prefix",
		"[fe80::1%eth0]:80":              "fe80::/64",
		"198.51.100.20:1":                "198.51.100.20/32",
		"[2001:db8:ffff:ffff:1:2:3:4]:9": "2001:db8:ffff:ffff::/64",
	} {
		r := httptest.NewRequest("POST", "/console/session", nil)
		r.RemoteAddr = remote
		if got := clientKey(r).String(); got != want {
			t.Errorf("%s: %s, want %s", remote, got, want)
		}
	}
}

// TestSignInLimited: after the limit's wrong tokens the sign-in answers
// 429 TooManyRequestsException with Retry-After, the right token too,
// and starts no session; another address still signs in; the log names
// the address and never the tokens.
func TestSignInLimited(t *testing.T) {
	h, s := newTestHandler(t)
	var log strings.Builder
	h.logger = testLogger(&log)
	c := &clock{t: time.Now()}
	h.limiter.now = c.now
	from := map[string]string{}
	signIn := func(tok, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/console/session", strings.NewReader(fmt.Sprintf(`{"token":%q}`, tok)))
		r.RemoteAddr = remote
		for k, v := range from {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < 5; i++ {
		if w := signIn(fmt.Sprintf("owl_guess-%d", i), "192.0.2.50:1000"); w.Code != 403 {
			t.Fatalf("wrong token %d: %d, want 403", i, w.Code)
		}
	}
	w := signIn(token, "192.0.2.50:1001")
	if w.Code != 429 || w.Header().Get("X-Amzn-ErrorType") != "TooManyRequestsException" || w.Header().Get("Retry-After") != "60" ||
		w.Header().Get("Set-Cookie") != "" || !strings.Contains(w.Body.String(), "Too many wrong tokens") {
		t.Fatalf("the right token after 5 wrong ones: %d %s Retry-After %q cookie %q %s", w.Code, w.Header().Get("X-Amzn-ErrorType"),
			w.Header().Get("Retry-After"), w.Header().Get("Set-Cookie"), w.Body)
	}
	if s.Len() != 0 {
		t.Fatalf("a refused sign-in made a session")
	}
	if w := signIn(token, "192.0.2.51:1000"); w.Code != 200 {
		t.Errorf("another address: %d, want 200", w.Code)
	}
	c.t = c.t.Add(time.Minute)
	if w := signIn(token, "192.0.2.50:1002"); w.Code != 200 {
		t.Errorf("after the window: %d, want 200", w.Code)
	}
	if strings.Contains(log.String(), "owl_guess") || strings.Contains(log.String(), token) {
		t.Errorf("the log holds a token:\n%s", log.String())
	}
	if got := strings.Count(log.String(), "console sign-in with a wrong token"); got != 5 || !strings.Contains(log.String(), "remote=192.0.2.50:1000") ||
		!strings.Contains(log.String(), "closed=true") {
		t.Errorf("want 5 lines naming the address, the last closing it:\n%s", log.String())
	}
}

func testLogger(w *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
