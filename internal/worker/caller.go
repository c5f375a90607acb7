package worker

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strings"
	"sync/atomic"
)

// A function calls other functions (and publishes events) through the
// Lambda API subset its own environment's Runtime API listener serves
// (127.0.0.1:9001 in its network namespace, AWS_ENDPOINT_URL_LAMBDA),
// signing with credentials made for that environment alone: they die
// with it and work only on its listener (Config.Inside decides what they
// may do). The environment knows which invocation is running, so each
// call carries the chain's depth and origin a hop further.

// Caller is an environment as the calls of its function see it.
type Caller struct {
	// Function is the name of the environment's function.
	Function string
	// AccessKeyID, SecretAccessKey and SessionToken are the environment's
	// own credentials, in its AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
	// AWS_SESSION_TOKEN.
	AccessKeyID, SecretAccessKey, SessionToken string
	// Current is the chain of the invocation running now: its depth and
	// origin (zero when none runs).
	Current func() (depth int, origin string)
}

// chain is the running invocation's place in a chain of calls and events.
type chain struct {
	depth  int
	origin string
}

// callerCreds are an environment's credentials, random and its own.
func callerCreds() (keyID, secret, token string) {
	b := make([]byte, 10+30+32)
	_, _ = rand.Read(b)
	enc := base64.RawURLEncoding
	keyID = "OWLENV" + strings.ToUpper(strings.NewReplacer("-", "0", "_", "1").Replace(enc.EncodeToString(b[:10])))
	return keyID[:20], enc.EncodeToString(b[10:40]), enc.EncodeToString(b[40:])
}

// callerEnv is what the runtime's environment gets to call back.
func callerEnv(keyID, secret, token string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + keyID,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_SESSION_TOKEN=" + token,
		"AWS_ENDPOINT_URL_LAMBDA=http://" + runtimeAPIAddr,
	}
}

// insideHandler is the handler of e's function's own calls, or nil when
// the worker serves none.
func (w *Worker) insideHandler(fn string, keyID, secret, token string, cur *atomic.Pointer[chain]) http.Handler {
	if w.cfg.Inside == nil {
		return nil
	}
	return w.cfg.Inside(Caller{Function: fn, AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: token,
		Current: func() (int, string) {
			if c := cur.Load(); c != nil {
				return c.depth, c.origin
			}
			return 0, ""
		}})
}

// running marks req as e's running invocation (nil when it ends).
func (e *env) running(req *Request) {
	if e.current == nil {
		return // an environment made without one (unit tests)
	}
	if req == nil {
		e.current.Store(nil)
		return
	}
	e.current.Store(&chain{depth: req.Depth, origin: cmp.Or(req.Origin, req.RequestID)})
}
