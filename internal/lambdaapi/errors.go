package lambdaapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// writeError renders any error the way Lambda does: status, the error type
// in X-Amzn-ErrorType, and a JSON body botocore and aws-sdk-go-v2 parse.
// This is the only place errors become HTTP.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if le := lambdaerr.As(err); lambdaerr.IsAuthentication(le.Code) {
		// At most one line a second: a flood of unauthenticated requests
		// must not become a flood of log lines.
		if n, ok := a.authLogs.allow(time.Now()); ok {
			a.logger.Info("request not authenticated", "method", r.Method, "path", r.URL.Path, "err", le.Error(),
				"remote", r.RemoteAddr, "suppressed_since_last", n)
		}
		writeJSONError(w, le.Status(), le.Code, map[string]any{"message": le.Message})
		return
	}
	if registry.IsInvalidKey(err) {
		// A name that slipped past validation into a store key: the
		// client's mistake, never a 500.
		err = lambdaerr.Wrap(lambdaerr.InvalidParameterValue, err, "Invalid name in the request path.")
	}
	le := lambdaerr.As(err)
	status := le.Status()
	if status >= 500 {
		a.logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	body := map[string]any{"Type": "User", "message": le.Message}
	switch le.Code {
	case lambdaerr.Validation:
		body = map[string]any{"message": le.Message}
	case lambdaerr.ResourceNotFound:
		body = map[string]any{"Type": "User", "Message": le.Message}
	case lambdaerr.Service, lambdaerr.ServiceUnavailable:
		body["Type"] = "Service"
	}
	if le.Reason != "" {
		body["Reason"] = le.Reason
	}
	if le.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(le.RetryAfter))
	}
	writeJSONError(w, status, le.Code, body)
}

func writeJSONError(w http.ResponseWriter, status int, code string, body map[string]any) {
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// logLimiter lets one log line through per second and counts the rest.
type logLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// allow reports whether a line may be logged now, and how many were
// suppressed since the last one.
func (l *logLimiter) allow(now time.Time) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < time.Second {
		l.suppressed++
		return 0, false
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return n, true
}
