// Package routes owns Owl's HTTP API: a table of routes — a method and a
// path with parameters ("GET /users/{id}", "ANY /files/{path+}",
// "$default"), each sending its requests to a function — kept in the
// JetStream KV bucket OWL_ROUTES and matched with net/http's ServeMux
// patterns, which also find the routes that clash. lambdaapi serves the
// table under /http/ as payload format 2.0 events.
package routes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

const bucket = "OWL_ROUTES"

// Route sends the requests that match Key to a function.
type Route struct {
	ID        string    `json:"id"`
	Key       string    `json:"key"` // "METHOD /path" or "$default"
	Function  string    `json:"function"`
	Qualifier string    `json:"qualifier,omitempty"`
	AuthType  string    `json:"auth_type"` // registry.AuthNone or AuthIAM
	Created   time.Time `json:"created"`
}

// Functions is what the table reads of the registry.
type Functions interface {
	ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (registry.Target, error)
}

// ServeFunc serves a request that matched rt; r.PathValue gives its path
// parameters (Params names them).
type ServeFunc func(w http.ResponseWriter, r *http.Request, rt Route)

// Table is the route table.
type Table struct {
	kv    jetstream.KeyValue
	fns   Functions
	serve ServeFunc
	log   *slog.Logger

	mu     sync.RWMutex
	routes map[string]Route // by ID
	mux    *http.ServeMux   // built from routes

	watcher jetstream.KeyWatcher
	done    chan struct{}
}

// Open opens the table and follows its changes (other nodes' too);
// matched requests go to serve.
func Open(ctx context.Context, js jetstream.JetStream, fns Functions, serve ServeFunc, logger *slog.Logger) (*Table, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Owl's HTTP routes", History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", bucket, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Table{kv: kv, fns: fns, serve: serve, log: logger, routes: map[string]Route{}, mux: http.NewServeMux(), done: make(chan struct{})}
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", bucket, err)
	}
	t.watcher = w
	// The initial values come first, then a nil entry: the table is
	// complete when Open returns.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		t.apply(e)
	}
	t.rebuild()
	go func() {
		defer close(t.done)
		for e := range w.Updates() {
			if e != nil {
				t.apply(e)
				t.rebuild()
			}
		}
	}()
	return t, nil
}

// Close stops following changes.
func (t *Table) Close() {
	_ = t.watcher.Stop()
	<-t.done
}

func (t *Table) apply(e jetstream.KeyValueEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(t.routes, e.Key())
		return
	}
	var rt Route
	if err := json.Unmarshal(e.Value(), &rt); err != nil {
		t.log.Warn("an undecodable route", "key", e.Key(), "err", err)
		return
	}
	t.routes[rt.ID] = rt
}

// rebuild makes the mux anew from the routes.
func (t *Table) rebuild() {
	t.mu.Lock()
	defer t.mu.Unlock()
	mux := http.NewServeMux()
	for _, rt := range t.routes {
		if err := register(mux, rt, t.serve); err != nil {
			t.log.Warn("a stored route does not fit the table", "route", rt.Key, "err", err)
		}
	}
	t.mux = mux
}

// register adds rt to mux; a pattern that is invalid or clashes with one
// already there is an error (ServeMux panics on both).
func register(mux *http.ServeMux, rt Route, serve ServeFunc) (err error) {
	pattern, err := Pattern(rt.Key)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { serve(w, r, rt) })
	return nil
}

var (
	methods  = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true, "ANY": true}
	segRe    = regexp.MustCompile(`^([A-Za-z0-9._~!$&'()*,;=:@-]+|\{[A-Za-z_][A-Za-z0-9_]*\+?\})$`)
	paramsRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\+?\}`)
)

// Pattern is route key's ServeMux pattern: "GET /users/{id}" stays,
// "ANY /x" loses its method, {name+} (the rest of the path, as API
// Gateway writes it) becomes {name...}, a path ending in / matches only
// itself, and "$default" matches whatever no other route does.
func Pattern(key string) (string, error) {
	if key == "$default" {
		return "/", nil
	}
	method, path, ok := strings.Cut(key, " ")
	if !ok || !methods[method] {
		return "", fmt.Errorf("route %q: want \"METHOD /path\" (GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY) or \"$default\"", key)
	}
	if !strings.HasPrefix(path, "/") || len(path) > 512 {
		return "", fmt.Errorf("route %q: the path must start with / (and be at most 512 bytes)", key)
	}
	segs := strings.Split(path[1:], "/")
	for i, s := range segs {
		if s == "" && i == len(segs)-1 {
			continue // a trailing slash
		}
		if !segRe.MatchString(s) {
			return "", fmt.Errorf("route %q: path segment %q is neither a name nor a {parameter}", key, s)
		}
		if strings.HasSuffix(s, "+}") && i != len(segs)-1 {
			return "", fmt.Errorf("route %q: a greedy {%s} must be the last segment", key, strings.Trim(s, "{+}"))
		}
	}
	p := paramsRe.ReplaceAllStringFunc(path, func(m string) string {
		if strings.HasSuffix(m, "+}") {
			return m[:len(m)-2] + "...}"
		}
		return m
	})
	if strings.HasSuffix(p, "/") {
		p += "{$}"
	}
	if method != "ANY" {
		p = method + " " + p
	}
	return p, nil
}

// Params are the names of the path parameters of route key.
func Params(key string) []string {
	var names []string
	for _, m := range paramsRe.FindAllStringSubmatch(key, -1) {
		names = append(names, m[1])
	}
	return names
}

// Add adds a route for key to function (a name, name:qualifier or ARN).
func (t *Table) Add(ctx context.Context, key, function, authType string) (Route, error) {
	if authType == "" {
		authType = registry.AuthNone
	}
	if authType != registry.AuthNone && authType != registry.AuthIAM {
		return Route{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "AuthType %q: want NONE or AWS_IAM.", authType)
	}
	name, q, err := registry.ParseName(function)
	if err != nil {
		return Route{}, err
	}
	if _, err := t.fns.ResolveForInvoke(ctx, name, q, 0); err != nil {
		return Route{}, err
	}
	rt := Route{ID: lambdawire.NewID(10), Key: key, Function: name, Qualifier: q, AuthType: authType, Created: time.Now().UTC()}
	// The new route must fit beside the others: a clash is refused.
	t.mu.RLock()
	trial := http.NewServeMux()
	for _, other := range t.routes {
		_ = register(trial, other, t.serve)
	}
	t.mu.RUnlock()
	if err := register(trial, rt, t.serve); err != nil {
		return Route{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "%v", err)
	}
	data, err := json.Marshal(rt)
	if err != nil {
		return Route{}, err
	}
	if _, err := t.kv.Create(ctx, rt.ID, data); err != nil {
		return Route{}, fmt.Errorf("storing route %s: %w", key, err)
	}
	t.mu.Lock()
	t.routes[rt.ID] = rt
	t.mu.Unlock()
	t.rebuild()
	return rt, nil
}

// List returns the routes, by key.
func (t *Table) List() []Route {
	t.mu.RLock()
	out := make([]Route, 0, len(t.routes))
	for _, rt := range t.routes {
		out = append(out, rt)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Delete removes the route with id, or else the route whose key is id.
func (t *Table) Delete(ctx context.Context, id string) error {
	t.mu.RLock()
	rt, ok := t.routes[id]
	if !ok {
		for _, r := range t.routes {
			if r.Key == id {
				rt, ok = r, true
			}
		}
	}
	t.mu.RUnlock()
	if !ok {
		return lambdaerr.New(lambdaerr.ResourceNotFound, "Route not found: %s", id)
	}
	if err := t.kv.Purge(ctx, rt.ID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("deleting route %s: %w", rt.Key, err)
	}
	t.mu.Lock()
	delete(t.routes, rt.ID)
	t.mu.Unlock()
	t.rebuild()
	return nil
}

// ServeHTTP routes r (its path already without the /http prefix); no
// route: 404 {"message":"Not Found"}, as API Gateway answers.
func (t *Table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t.mu.RLock()
	mux := t.mux
	t.mu.RUnlock()
	if _, pattern := mux.Handler(r); pattern == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"message":"Not Found"}`))
		return
	}
	mux.ServeHTTP(w, r)
}
