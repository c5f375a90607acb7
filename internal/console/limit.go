package console

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// SignInLimit bounds guessing the token through the sign-in: after
// Failures wrong tokens from one client address within Window, that
// address's sign-ins are refused, the right token too, until Window has
// passed since its first failure.
type SignInLimit struct {
	Failures int
	Window   time.Duration
}

// maxLimited is how many client addresses the limiter remembers. Past
// it (every one with failures inside its window), a new address's
// sign-ins are refused until one expires: failing closed, since a
// forgotten address could guess again.
const maxLimited = 10000

// limiter counts each client address's failed sign-ins in a window that
// starts at its first failure.
type limiter struct {
	limit SignInLimit
	now   func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*failures
}

type failures struct {
	n     int
	first time.Time
}

func newLimiter(l SignInLimit) *limiter {
	if l.Failures < 1 {
		l.Failures = 5
	}
	if l.Window <= 0 {
		l.Window = time.Minute
	}
	return &limiter{limit: l, now: time.Now, clients: map[netip.Prefix]*failures{}}
}

// clientKey is who a request comes from: its peer's IPv4 address, or its
// IPv6 /64 (one host commonly holds a whole /64). A proxy in front of
// Owl makes every client one; X-Forwarded-For is not trusted, since any
// client can write it.
func clientKey(r *http.Request) netip.Prefix {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// blocked returns how long until key may sign in again (0: it may now).
func (l *limiter) blocked(key netip.Prefix) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.clients[key]
	if f == nil {
		if len(l.clients) < maxLimited {
			return 0
		}
		l.expire(now)
		if len(l.clients) < maxLimited {
			return 0
		}
		return l.limit.Window // full of guessers: wait for one to expire
	}
	left := f.first.Add(l.limit.Window).Sub(now)
	if left <= 0 {
		delete(l.clients, key)
		return 0
	}
	if f.n >= l.limit.Failures {
		return left
	}
	return 0
}

// failed counts a wrong token from key, answering its failures in the
// window so far.
func (l *limiter) failed(key netip.Prefix) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.clients[key]
	if f == nil || !now.Before(f.first.Add(l.limit.Window)) {
		if f == nil && len(l.clients) >= maxLimited {
			l.expire(now)
		}
		f = &failures{first: now}
		l.clients[key] = f
	}
	f.n++
	return f.n
}

// succeeded forgets key's failures: the one who typed the token wrong a
// few times and then right starts afresh.
func (l *limiter) succeeded(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.clients, key)
}

// expire drops the addresses whose window has passed.
func (l *limiter) expire(now time.Time) {
	for k, f := range l.clients {
		if !now.Before(f.first.Add(l.limit.Window)) {
			delete(l.clients, k)
		}
	}
}
