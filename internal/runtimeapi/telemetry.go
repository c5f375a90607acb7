package runtimeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// The Telemetry API (2022-07-01): an extension subscribes with PUT, and
// the environment's events are POSTed to its listener in batches, as JSON
// arrays of {"time","type","record"}, in Lambda's schema.
const (
	telemetryPath = "/2022-07-01/telemetry"
	errValidation = "ValidationError"
	// Lambda's buffering bounds and defaults.
	minItems, maxItems, defItems             = 1000, 10000, 10000
	minBytes, maxBytes, defBytes             = 262144, 1048576, 262144
	minTimeoutMs, maxTimeoutMs, defTimeoutMs = 25, 30000, 1000
	// initBacklog is how many events of init are kept for subscribers
	// that subscribe during init (they get what happened before).
	initBacklog = 1000
)

// Telemetry categories (the subscription's types).
const (
	TelemetryPlatform  = "platform"
	TelemetryFunction  = "function"
	TelemetryExtension = "extension"
)

// schemaVersions are the versions of the subscription Lambda accepts.
var schemaVersions = []string{"2022-07-01", "2022-12-13", "2025-01-29"}

// telemetry holds the subscriptions of one environment.
type telemetry struct {
	s    *Server
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	subs    []*subscriber
	backlog []telemetryEvent // events of init, until init ends (nil after)
	initEnd bool
	wg      sync.WaitGroup // subscriber goroutines
}

type telemetryEvent struct {
	category string
	data     []byte // {"time","type","record"}
}

// subscriber is one subscription: a buffer and the goroutine that sends it.
type subscriber struct {
	ext      string
	types    []string
	url      string
	items    int
	bytes    int
	timeout  time.Duration
	client   *http.Client
	kick     chan struct{}      // cap 1: the buffer has new events
	flushReq chan chan struct{} // send the buffer now, then close the channel

	mu      sync.Mutex
	buf     [][]byte
	bufSize int
}

// subscriptionRequest is the body of PUT /telemetry.
type subscriptionRequest struct {
	SchemaVersion string   `json:"schemaVersion"`
	Types         []string `json:"types"`
	Destination   struct {
		Protocol string `json:"protocol"`
		URI      string `json:"URI"`
	} `json:"destination"`
	Buffering struct {
		MaxItems  int `json:"maxItems"`
		MaxBytes  int `json:"maxBytes"`
		TimeoutMs int `json:"timeoutMs"`
	} `json:"buffering"`
}

// subscribe serves PUT /2022-07-01/telemetry.
func (t *telemetry) subscribe(w http.ResponseWriter, r *http.Request) {
	x := t.s.ext
	e := x.lookup(w, r)
	if e == nil {
		return
	}
	name := e.name
	x.mu.Unlock()
	body, tooLarge, err := readBody(r, 64<<10)
	if err != nil || tooLarge {
		t.s.fail(w, r, http.StatusBadRequest, errValidation, "The subscription could not be read (at most 64 KiB).")
		return
	}
	sub, msg := parseSubscription(body)
	if msg != "" {
		t.s.fail(w, r, http.StatusBadRequest, errValidation, msg)
		return
	}
	sub.ext = name
	sub.kick, sub.flushReq = make(chan struct{}, 1), make(chan chan struct{})
	dial := t.dial
	sub.client = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			if dial == nil {
				return nil, fmt.Errorf("telemetry: no way into the sandbox's network to reach %s", addr)
			}
			return dial(ctx, addr)
		},
		MaxIdleConns: 1,
	}}

	t.mu.Lock()
	t.subs = slices.DeleteFunc(t.subs, func(o *subscriber) bool { return o.ext == name && o.stop() })
	t.subs = append(t.subs, sub)
	for _, ev := range t.backlog {
		sub.add(ev)
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go sub.run(t)
	t.s.log.LogAttrs(logCtx, slog.LevelDebug, "telemetry subscription", slog.String("extension", name), slog.Any("types", sub.types), slog.String("uri", sub.url))
	t.publish(TelemetryPlatform, "platform.telemetrySubscription", map[string]any{"name": name, "state": "Subscribed", "types": sub.types})

	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(`"OK"`))
}

// parseSubscription checks a subscription as Lambda's schema does; msg
// says what is wrong.
func parseSubscription(body []byte) (sub *subscriber, msg string) {
	var req subscriptionRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, "Invalid JSON: " + err.Error()
	}
	if !slices.Contains(schemaVersions, req.SchemaVersion) {
		return nil, fmt.Sprintf("schemaVersion %q is not one of %v", req.SchemaVersion, schemaVersions)
	}
	if len(req.Types) == 0 {
		return nil, "types must name at least one of platform, function, extension"
	}
	for _, typ := range req.Types {
		if typ != TelemetryPlatform && typ != TelemetryFunction && typ != TelemetryExtension {
			return nil, fmt.Sprintf("types: %q is not one of platform, function, extension", typ)
		}
	}
	if req.Destination.Protocol != "HTTP" {
		return nil, fmt.Sprintf("destination.protocol %q is not supported: Owl delivers over HTTP only", req.Destination.Protocol)
	}
	u, err := url.Parse(req.Destination.URI)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return nil, fmt.Sprintf("destination.URI %q is not an http URI with a port", req.Destination.URI)
	}
	if h := u.Hostname(); h != "sandbox.localdomain" && h != "sandbox" && h != "localhost" && h != "127.0.0.1" {
		return nil, fmt.Sprintf("destination.URI %q: the host must be sandbox.localdomain (the environment's own listener)", req.Destination.URI)
	}
	b := req.Buffering
	check := func(name string, v, lo, hi, def int) (int, string) {
		switch {
		case v == 0:
			return def, ""
		case v < lo || v > hi:
			return 0, fmt.Sprintf("buffering.%s %d is out of range [%d, %d]", name, v, lo, hi)
		}
		return v, ""
	}
	sub = &subscriber{types: req.Types, url: "http://127.0.0.1:" + u.Port() + u.EscapedPath()}
	var ms int
	for _, c := range []struct {
		name          string
		v, lo, hi, df int
		dst           *int
	}{
		{"maxItems", b.MaxItems, minItems, maxItems, defItems, &sub.items},
		{"maxBytes", b.MaxBytes, minBytes, maxBytes, defBytes, &sub.bytes},
		{"timeoutMs", b.TimeoutMs, minTimeoutMs, maxTimeoutMs, defTimeoutMs, &ms},
	} {
		if *c.dst, msg = check(c.name, c.v, c.lo, c.hi, c.df); msg != "" {
			return nil, msg
		}
	}
	sub.timeout = time.Duration(ms) * time.Millisecond
	return sub, ""
}

// stop ends s's goroutine; true (for DeleteFunc).
func (s *subscriber) stop() bool {
	close(s.kick)
	return true
}

// add buffers ev if s subscribed to its category.
func (s *subscriber) add(ev telemetryEvent) {
	if !slices.Contains(s.types, ev.category) {
		return
	}
	s.mu.Lock()
	s.buf = append(s.buf, ev.data)
	s.bufSize += len(ev.data)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run sends s's buffer when it is full or its oldest event is timeout
// old, or on request, until s is stopped or the server closes.
func (s *subscriber) run(t *telemetry) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-t.s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	armed := false
	for {
		select {
		case _, ok := <-s.kick:
			if !ok {
				return
			}
			s.mu.Lock()
			full := len(s.buf) >= s.items || s.bufSize >= s.bytes
			s.mu.Unlock()
			if full {
				s.send(ctx, t.s.log)
			} else if !armed {
				timer.Reset(s.timeout)
				armed = true
			}
		case <-timer.C:
			armed = false
			s.send(ctx, t.s.log)
		case done := <-s.flushReq:
			s.send(ctx, t.s.log)
			close(done)
		case <-ctx.Done():
			return
		}
	}
}

// send POSTs the buffer as one batch; a failure is logged and the batch
// dropped.
func (s *subscriber) send(ctx context.Context, log *slog.Logger) {
	s.mu.Lock()
	batch := s.buf
	s.buf, s.bufSize = nil, 0
	s.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	body := append([]byte{'['}, bytes.Join(batch, []byte{','})...)
	body = append(body, ']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		log.LogAttrs(ctx, slog.LevelDebug, "telemetry batch not delivered", slog.String("extension", s.ext), slog.Int("events", len(batch)), slog.Any("err", err))
		return
	}
	resp.Body.Close()
}

// wanted reports whether an event would go anywhere: a subscriber, or
// the backlog of init. The platform events check it first, so that an
// environment without subscribers builds no record (the warm path).
func (t *telemetry) wanted() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs) > 0 || !t.initEnd
}

// publish records an event of category with type typ and record for
// every subscriber (and, during init, for later ones).
func (t *telemetry) publish(category, typ string, record any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.subs) == 0 && t.initEnd {
		return
	}
	data, err := json.Marshal(struct {
		Time   string `json:"time"`
		Type   string `json:"type"`
		Record any    `json:"record"`
	}{time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), typ, record})
	if err != nil {
		return
	}
	ev := telemetryEvent{category, data}
	if !t.initEnd && len(t.backlog) < initBacklog {
		t.backlog = append(t.backlog, ev)
	}
	for _, s := range t.subs {
		s.add(ev)
	}
}

// endInit drops the backlog: a later subscriber gets events from then on.
func (t *telemetry) endInit() {
	t.mu.Lock()
	t.initEnd, t.backlog = true, nil
	t.mu.Unlock()
}

// flush sends every subscriber's buffer now, waiting until ctx ends.
func (t *telemetry) flush(ctx context.Context) {
	t.mu.Lock()
	subs := slices.Clone(t.subs)
	t.mu.Unlock()
	for _, s := range subs {
		done := make(chan struct{})
		select {
		case s.flushReq <- done:
		case <-ctx.Done():
			return
		case <-t.s.closed:
			return
		}
		select {
		case <-done:
		case <-ctx.Done():
			return
		}
	}
}

// close stops every subscriber and waits for them (after Server.closed
// is closed, which cancels their requests).
func (t *telemetry) close() {
	t.mu.Lock()
	for _, s := range t.subs {
		s.stop()
		defer s.client.CloseIdleConnections() // after run returned
	}
	t.subs = nil
	t.mu.Unlock()
	t.wg.Wait()
}

// Platform events. The worker calls these at the moments Lambda emits
// them; each is a no-op without a subscriber (after init).

// TelemetryInitStart emits platform.initStart.
func (s *Server) TelemetryInitStart(initType string) {
	if !s.tel.wanted() {
		return
	}
	s.tel.publish(TelemetryPlatform, "platform.initStart", map[string]any{
		"initializationType": initType, "phase": "init",
		"functionName": s.ext.fn.Name, "functionVersion": s.ext.fn.Version,
	})
}

// TelemetryInitDone emits platform.initRuntimeDone and
// platform.initReport; errorType is empty on success.
func (s *Server) TelemetryInitDone(initType, errorType string, dur time.Duration) {
	if !s.tel.wanted() {
		return
	}
	status := "success"
	if errorType != "" {
		status = "error"
	}
	done := map[string]any{"initializationType": initType, "phase": "init", "status": status}
	if errorType != "" {
		done["errorType"] = errorType
	}
	s.tel.publish(TelemetryPlatform, "platform.initRuntimeDone", done)
	rep := map[string]any{"initializationType": initType, "phase": "init", "status": status,
		"metrics": map[string]any{"durationMs": ms(dur)}}
	if errorType != "" {
		rep["errorType"] = errorType
	}
	s.tel.publish(TelemetryPlatform, "platform.initReport", rep)
	s.tel.endInit()
}

// TelemetryStart emits platform.start.
func (s *Server) TelemetryStart(requestID, version string) {
	if !s.tel.wanted() {
		return
	}
	s.tel.publish(TelemetryPlatform, "platform.start", map[string]any{"requestId": requestID, "version": version})
}

// TelemetryLines emits one event of category (function or extension) per
// log line.
func (s *Server) TelemetryLines(category string, lines []string) {
	if len(lines) == 0 || !s.tel.wanted() {
		return
	}
	for _, l := range lines {
		s.tel.publish(category, category, l)
	}
}

// InvokeReport is what platform.runtimeDone and platform.report say of an
// invocation.
type InvokeReport struct {
	RequestID string
	// Status is success, error (the function failed), timeout or failure
	// (the runtime or an extension failed).
	Status, ErrorType           string
	Duration, InitDuration      time.Duration
	BilledMs                    int64
	MemorySizeMB, MaxMemoryUsed int
}

// TelemetryInvokeDone emits platform.runtimeDone and platform.report.
func (s *Server) TelemetryInvokeDone(r InvokeReport) {
	if !s.tel.wanted() {
		return
	}
	done := map[string]any{"requestId": r.RequestID, "status": r.Status, "metrics": map[string]any{"durationMs": ms(r.Duration)}}
	if r.ErrorType != "" {
		done["errorType"] = r.ErrorType
	}
	s.tel.publish(TelemetryPlatform, "platform.runtimeDone", done)
	metrics := map[string]any{"durationMs": ms(r.Duration), "billedDurationMs": r.BilledMs,
		"memorySizeMB": r.MemorySizeMB, "maxMemoryUsedMB": r.MaxMemoryUsed}
	if r.InitDuration > 0 {
		metrics["initDurationMs"] = ms(r.InitDuration)
	}
	rep := map[string]any{"requestId": r.RequestID, "status": r.Status, "metrics": metrics}
	if r.ErrorType != "" {
		rep["errorType"] = r.ErrorType
	}
	s.tel.publish(TelemetryPlatform, "platform.report", rep)
}

// ms is d in milliseconds with microsecond precision, as Lambda reports.
func ms(d time.Duration) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64), 64)
	return v
}
