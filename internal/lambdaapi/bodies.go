package lambdaapi

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Request bodies cost memory, and a client can send them slowly. Owl reads a
// body only after the request's headers authenticated it (auth's
// AuthenticateHeaders) — or, for SigV4 clients that sign a body hash they do
// not declare, after the headers proved a known key, a valid scope and a
// fresh signing time; then within a budget of its own. Every body is read
// at a minimum rate and counted against the memory budget while it is read
// and handled.

const (
	// bodyGrace is how long a body may take before the minimum rate
	// applies.
	bodyGrace = 10 * time.Second
	// bodyMinRate is the slowest average rate, in bytes per second, at
	// which a body may arrive after bodyGrace.
	bodyMinRate = 64 << 10
	// maxPendingBodies caps the budget of bodies whose sender is not yet
	// authenticated.
	maxPendingBodies = 64 << 20
)

// errBodyTooSlow is a body that fell below the minimum rate.
var errBodyTooSlow = errors.New("request body arrived too slowly")

// bodyBudget counts the bytes of request bodies held at once: all of them,
// and those whose sender is not yet authenticated. Safe for concurrent use.
type bodyBudget struct {
	max, pendingMax int64
	used, pending   atomic.Int64
}

func newBodyBudget(max int64) *bodyBudget {
	return &bodyBudget{max: max, pendingMax: min(maxPendingBodies, max/16)}
}

// take reserves n bytes (pending: of an unauthenticated sender), or
// reports that the budget is spent.
func (b *bodyBudget) take(n int64, pending bool) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	if pending && b.pending.Add(n) > b.pendingMax {
		b.pending.Add(-n)
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *bodyBudget) give(n int64, pending bool) {
	b.used.Add(-n)
	if pending {
		b.pending.Add(-n)
	}
}

// authenticatedNow moves n pending bytes to the authenticated share.
func (b *bodyBudget) authenticatedNow(n int64) { b.pending.Add(-n) }

// busy is the answer when the budget is spent.
func busy() error {
	e := lambdaerr.New(lambdaerr.TooManyRequests, "Too many request bodies are being received; retry shortly.")
	e.RetryAfter = 1
	return e
}

// bodyReader reads a request body at the minimum rate: each read's
// deadline allows bodyGrace plus the time the bytes so far take at
// bodyMinRate. Past limit bytes it fails with errTooLarge, too slow with
// errBodyTooSlow.
type bodyReader struct {
	body  io.Reader
	rc    *http.ResponseController
	start time.Time
	limit int64
	n     int64 // bytes read so far
}

func newBodyReader(w http.ResponseWriter, r *http.Request, limit int64) *bodyReader {
	return &bodyReader{body: r.Body, rc: http.NewResponseController(w), start: time.Now(), limit: limit}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, errTooLarge
	}
	if room := b.limit + 1 - b.n; int64(len(p)) > room {
		p = p[:room]
	}
	deadline := b.start.Add(bodyGrace + time.Duration(b.n*int64(time.Second)/bodyMinRate))
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case b.n > b.limit:
		return n, errTooLarge
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != nil && !time.Now().Before(deadline):
		err = errBodyTooSlow
	}
	return n, err
}

// readBody reads r's body, at most limit bytes, at the minimum rate,
// reserving what it reads in the budget (pending: for a sender not yet
// authenticated). On success the caller owns held bytes of the budget and
// gives them back once the body is no longer needed; on error nothing is
// held.
func (a *API) readBody(w http.ResponseWriter, r *http.Request, limit int64, pending bool) (body []byte, held int64, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, 0, nil
	}
	defer r.Body.Close()
	if r.ContentLength > limit {
		return nil, 0, errTooLarge
	}
	defer func() {
		if err != nil {
			a.bodies.give(held, pending)
			held = 0
		}
	}()
	// Reserve the declared length up front (fail before reading a byte);
	// a body of unknown length reserves as it arrives.
	if r.ContentLength > 0 {
		if !a.bodies.take(r.ContentLength, pending) {
			return nil, 0, busy()
		}
		held = r.ContentLength
	}
	br := newBodyReader(w, r, limit)
	buf := make([]byte, 0, max(r.ContentLength, 0)+1)
	for {
		if len(buf) == cap(buf) {
			grow := min(max(int64(cap(buf)), 32<<10), limit+1-int64(len(buf)))
			if more := int64(len(buf)) + grow - held; more > 0 {
				if !a.bodies.take(more, pending) {
					return nil, held, busy()
				}
				held += more
			}
			nb := make([]byte, len(buf), int64(len(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, rerr := br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			return buf, held, nil
		}
		if rerr != nil {
			return nil, held, rerr
		}
	}
}

// heldBytes is a body (or the part of one) held in memory within the
// budget: it reserves its capacity before growing. The owner gives back
// held once done.
type heldBytes struct {
	budget  *bodyBudget
	pending bool
	buf     []byte
	held    int64
}

// grow makes room for n more bytes, or fails with busy().
func (h *heldBytes) grow(n int) error {
	if len(h.buf)+n <= cap(h.buf) {
		return nil
	}
	c := max(2*cap(h.buf), len(h.buf)+n, 4<<10)
	if more := int64(c) - h.held; more > 0 {
		if !h.budget.take(more, h.pending) {
			return busy()
		}
		h.held += more
	}
	nb := make([]byte, len(h.buf), c)
	copy(nb, h.buf)
	h.buf = nb
	return nil
}

func (h *heldBytes) Write(p []byte) (int, error) {
	if err := h.grow(len(p)); err != nil {
		return 0, err
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

func (h *heldBytes) WriteByte(c byte) error {
	if err := h.grow(1); err != nil {
		return err
	}
	h.buf = append(h.buf, c)
	return nil
}
