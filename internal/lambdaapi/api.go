// Package lambdaapi serves Owl's Lambda-compatible HTTP API (the paths,
// shapes and errors real AWS clients use) plus Owl's /owl/v1 extensions.
// Every request is authenticated before it reaches a handler (SigV4, the
// bearer token, or the web console's session cookie with its CSRF header:
// auth.Sessions), except the health probe GET /healthz (health.go), which
// reveals only which checks failed, and the web console's own pages and
// sign-in under /console/ (Options.Console, internal/console); errors are
// rendered in one place (writeError).
package lambdaapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/telemetry"
	"github.com/owl-project/owl/internal/tracing"
)

// Payload limits (Lambda's).
const (
	MaxSyncPayload = 6291556
	// maxManagementBody bounds a CreateFunction/UpdateFunctionCode body: a
	// 50 MB zip in base64 plus the JSON around it.
	maxManagementBody = 52428800*4/3 + 1<<20
)

// Invoker is the API's one seam to what runs functions: this node's worker
// today (the server's adapter), a remote one later. It only runs
// invocations and answers one read-only question; changes to functions
// reach the worker through the registry's change feed, never through here.
type Invoker interface {
	// Invoke runs one invocation. Errors are platform or admission errors
	// (lambdaerr); a function's own failure is a result with FunctionError.
	Invoke(ctx context.Context, req InvokeRequest) (*InvokeResult, error)
	// Provisioned reports the provisioned environments of a version that
	// exist and the last failure starting one.
	Provisioned(name, version string) (ready int, failure string)
}

// InvokeRequest is one invocation of a resolved function configuration.
type InvokeRequest struct {
	// Function is the configuration to run: $LATEST or a published
	// version, as the registry resolved the caller's qualifier.
	Function      registry.Function
	RequestID     string
	Payload       []byte
	ClientContext string // decoded JSON
	TraceID       string
	// InvokedARN is the ARN the caller used, qualifier included.
	InvokedARN string
	// Depth and Origin place a function's own call in its chain (inside.go).
	Depth  int
	Origin string
	// Stream, when set, receives the response of a runtime that streams
	// it, as it is written (stream.go); the result then says Streamed.
	Stream ResponseStream
}

// ResponseStream receives a streamed response (InvokeWithResponseStream,
// function URLs in RESPONSE_STREAM mode): Begin once with the response's
// content type, then Write as the runtime writes. An error from either
// means the client is gone, which ends the invocation.
type ResponseStream interface {
	Begin(contentType string) error
	Write(p []byte) (int, error)
}

// InvokeResult is the outcome of an invocation that reached a runtime.
type InvokeResult struct {
	Payload []byte
	// FunctionError is true when Payload is an error object (the API sets
	// X-Amz-Function-Error: Unhandled).
	FunctionError bool
	ErrorType     string
	// Log is this invocation's log text, START to REPORT.
	Log string
	// Streamed is true when the response went to InvokeRequest.Stream:
	// Payload is then empty, or the error object of a failure.
	Streamed bool
}

// Options configures the API.
type Options struct {
	Region, AccountID string
	CodeStorageLimit  int64
	ConcurrencyLimit  int
	ZipLimits         codezip.Limits
	// NetworkEgress says whether functions may have network egress; it is
	// then the default of functions that do not choose (see registry.CheckNetwork).
	NetworkEgress bool
	// MaxBodyMemory caps the bytes of request bodies held at once
	// (DefaultMaxBodyMemory when 0). Code uploads hold only the JSON
	// around their zip (upload.go).
	MaxBodyMemory int64
	// UploadDir is where code uploads spool their zips (the system's
	// temporary directory when empty); the files are unlinked as soon as
	// they are created.
	UploadDir string
	// Space, when set, is the disk guard of UploadDir's filesystem, which
	// spooled zips claim their space from.
	Space *diskspace.Guard
	// Health says whether the node is ready, for GET /healthz; nil: the
	// API answering is all it reports (200).
	Health HealthFunc
	// Events stores asynchronous invocations (internal/events); nil: the
	// Event invocation type is refused.
	Events EventQueue
	// EventLog lists, shows and replays accepted events (/owl/v1/events);
	// nil: those operations are refused.
	EventLog EventLog
	// Triggers keeps the schedules (/owl/v1/triggers); nil: refused.
	Triggers Triggers
	// Mappings keeps the event source mappings (NATS subjects); nil:
	// refused.
	Mappings Mappings
	// Metrics serves GET /metrics (Prometheus), authenticated like every
	// operation; nil: refused.
	Metrics http.Handler
	// Usage answers GET /owl/v1/usage; nil: refused.
	Usage Usage
	// Nodes is the cluster's node registry (/owl/v1/nodes); nil:
	// refused.
	Nodes Nodes
	// WorkerOnly serves only /healthz, /metrics and /owl/v1/nodes: the
	// API of a worker node (--role worker).
	WorkerOnly bool
	// History answers GET /owl/v1/metrics/history; nil: refused.
	History History
	// Routes is the HTTP API's route table (served under /http/, managed
	// at /owl/v1/routes); nil: refused.
	Routes Routes
	// Images pulls container images (PackageType Image); nil: refused.
	Images Images
	// Tracer records the API's span of each invocation (nil: off; the
	// trace header is passed on all the same).
	Tracer *tracing.Tracer
	// Sessions, when set, also authenticates the API's operations by the
	// web console's session cookie (a request with no Authorization
	// header) together with its CSRF header, on every request. Function
	// URLs, routes and a function's own calls never take the cookie.
	Sessions *auth.Sessions
	// Console, when set, serves the web console under /console/, and a
	// browser's GET / (Accept: text/html) is redirected there.
	Console http.Handler
	Logger  *slog.Logger
}

// EventQueue stores an accepted asynchronous invocation durably; the API
// answers 202 only once Enqueue returned nil.
type EventQueue interface {
	Enqueue(ctx context.Context, ev events.Event) error
	// EnqueueFrom is Enqueue with the event log record's type and source
	// (a function's own call: its ARN).
	EnqueueFrom(ctx context.Context, ev events.Event, typ, source string) error
}

// DefaultMaxBodyMemory is Options.MaxBodyMemory's default.
const DefaultMaxBodyMemory = 1 << 30

// API is the HTTP handler of Owl's API.
type API struct {
	opts    Options
	auth    *auth.Authenticator
	reg     *registry.Registry
	invoker Invoker
	logs    *telemetry.LogStore
	logger  *slog.Logger
	mux     *http.ServeMux
	unknown http.Handler // the answer to a path that names no operation
	bodies  *bodyBudget  // memory held by request bodies (bodies.go)
	// uploads counts the code upload bodies of senders not yet
	// authenticated, which go to disk (upload.go).
	uploads   *bodyBudget
	uploadDir string
	// closing ends when Close is called: streams (log follows) end.
	closing      context.Context
	closeStreams context.CancelFunc
	// authLogs rate-limits the log lines of unauthenticated requests.
	authLogs logLimiter
	// workerOnly, on a worker node, serves instead of mux (nodes.go).
	workerOnly http.Handler
}

// New builds the API handler.
func New(opts Options, a *auth.Authenticator, reg *registry.Registry, inv Invoker, logs *telemetry.LogStore) *API {
	if opts.MaxBodyMemory <= 0 {
		opts.MaxBodyMemory = DefaultMaxBodyMemory
	}
	api := &API{opts: opts, auth: a, reg: reg, invoker: inv, logs: logs, logger: opts.Logger, mux: http.NewServeMux(),
		bodies:    newBodyBudget(opts.MaxBodyMemory),
		uploads:   &bodyBudget{max: math.MaxInt64 / 2, pendingMax: maxPendingUploads},
		uploadDir: cmp.Or(opts.UploadDir, os.TempDir())}
	api.closing, api.closeStreams = context.WithCancel(context.Background())
	api.routes()
	if opts.WorkerOnly {
		api.workerOnly = workerOnly(api.mux)
	}
	return api
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte) error

// routes registers every operation on a.mux. It is long because it is the
// table of Lambda's operations, one line each, read best in one place.
func (a *API) routes() {
	// Unauthenticated, before everything else: liveness and readiness
	// probes carry no credentials, and the answer reveals only which
	// checks failed.
	a.mux.Handle("/healthz", newHealth(a.opts.Health, a.logger))
	a.consoleRoutes()
	h := func(pattern string, limit int64, fn handlerFunc) {
		a.mux.Handle(pattern, a.authenticated(limit, fn))
	}
	const fns = "/2015-03-31/functions"
	// "{$}" matches the trailing-slash form exactly: a bare "/" suffix
	// would make every unknown path below it a create or a list.
	// Code uploads stream their bodies (upload.go).
	u := func(pattern string, path []string, fn uploadFunc) {
		a.mux.Handle(pattern, a.uploading(maxManagementBody, path, fn))
	}
	u("POST "+fns, createZipPath, a.createFunction)
	u("POST "+fns+"/{$}", createZipPath, a.createFunction)
	h("GET "+fns, 0, a.listFunctions)
	h("GET "+fns+"/{$}", 0, a.listFunctions)
	h("GET "+fns+"/{name}", 0, a.getFunction)
	h("GET "+fns+"/{name}/configuration", 0, a.getFunctionConfiguration)
	u("PUT "+fns+"/{name}/code", updateZipPath, a.updateFunctionCode)
	h("PUT "+fns+"/{name}/configuration", 1<<20, a.updateFunctionConfiguration)
	h("DELETE "+fns+"/{name}", 0, a.deleteFunction)
	h("POST "+fns+"/{name}/invocations", MaxSyncPayload, a.invoke)
	h("POST /2021-11-15/functions/{name}/response-streaming-invocations", MaxSyncPayload, a.invokeWithResponseStream)
	h("POST /2014-11-13/functions/{name}/invoke-async/{$}", events.MaxPayload, a.invokeAsyncLegacy)
	h("POST /2014-11-13/functions/{name}/invoke-async", events.MaxPayload, a.invokeAsyncLegacy)
	h("POST "+fns+"/{name}/versions", 1<<20, a.publishVersion)
	h("GET "+fns+"/{name}/versions", 0, a.listVersions)
	h("POST "+fns+"/{name}/aliases", 1<<20, a.createAlias)
	h("GET "+fns+"/{name}/aliases", 0, a.listAliases)
	h("GET "+fns+"/{name}/aliases/{alias}", 0, a.getAlias)
	h("PUT "+fns+"/{name}/aliases/{alias}", 1<<20, a.updateAlias)
	h("DELETE "+fns+"/{name}/aliases/{alias}", 0, a.deleteAlias)
	h("PUT /2017-10-31/functions/{name}/concurrency", 1<<16, a.putFunctionConcurrency)
	h("GET /2019-09-30/functions/{name}/concurrency", 0, a.getFunctionConcurrency)
	h("DELETE /2017-10-31/functions/{name}/concurrency", 0, a.deleteFunctionConcurrency)
	h("PUT /2024-08-31/functions/{name}/recursion-config", 1<<16, a.putRecursionConfig)
	h("GET /2024-08-31/functions/{name}/recursion-config", 0, a.getRecursionConfig)
	const pc = "/2019-09-30/functions/{name}/provisioned-concurrency"
	h("PUT "+pc, 1<<16, a.putProvisioned)
	h("GET "+pc, 0, a.getProvisioned)
	h("DELETE "+pc, 0, a.deleteProvisioned)
	const eic = "/2019-09-25/functions/{name}/event-invoke-config"
	h("PUT "+eic, 1<<16, a.putEventInvokeConfig)
	h("POST "+eic, 1<<16, a.updateEventInvokeConfig)
	h("GET "+eic, 0, a.getEventInvokeConfig)
	h("DELETE "+eic, 0, a.deleteEventInvokeConfig)
	h("GET "+eic+"/list", 0, a.listEventInvokeConfigs)
	const fu = "/2021-10-31/functions/{name}/url"
	h("POST "+fu, 1<<16, a.createURLConfig)
	h("GET "+fu, 0, a.getURLConfig)
	h("PUT "+fu, 1<<16, a.updateURLConfig)
	h("DELETE "+fu, 0, a.deleteURLConfig)
	h("GET /2021-10-31/functions/{name}/urls", 0, a.listURLConfigs)
	const esm = "/2015-03-31/event-source-mappings"
	h("POST "+esm+"/{$}", 1<<20, a.createMapping)
	h("POST "+esm, 1<<20, a.createMapping)
	h("GET "+esm+"/{$}", 0, a.listMappings)
	h("GET "+esm, 0, a.listMappings)
	h("GET "+esm+"/{uuid}", 0, a.getMapping)
	h("PUT "+esm+"/{uuid}", 1<<20, a.updateMapping)
	h("DELETE "+esm+"/{uuid}", 0, a.deleteMapping)
	h("POST "+tagsRoute, 1<<20, a.tagResource)
	h("DELETE "+tagsRoute, 0, a.untagResource)
	h("GET "+tagsRoute, 0, a.listTags)
	h("GET /2016-08-19/account-settings", 0, a.getAccountSettings)
	h("GET /2016-08-19/account-settings/{$}", 0, a.getAccountSettings)
	const layers = "/2018-10-31/layers"
	h("GET "+layers, 0, a.listLayers)
	h("GET "+layers+"/{$}", 0, a.listLayers)
	u("POST "+layers+"/{name}/versions", layerZipPath, a.publishLayerVersion)
	h("GET "+layers+"/{name}/versions", 0, a.listLayerVersions)
	h("GET "+layers+"/{name}/versions/{version}", 0, a.getLayerVersion)
	h("DELETE "+layers+"/{name}/versions/{version}", 0, a.deleteLayerVersion)
	a.owlRoutes(h)
	a.unknown = a.authenticated(0, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		return lambdaerr.New(lambdaerr.UnknownOperation, "Unknown operation %s %s", r.Method, r.URL.Path)
	})
	a.mux.Handle("/", a.unknown)
}

// consoleRoutes registers the web console's pages and its sign-in, which
// authenticate themselves (internal/console), when there is a console.
func (a *API) consoleRoutes() {
	if a.opts.Console == nil {
		return
	}
	a.mux.Handle("/console/", a.opts.Console)
	a.mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
}

// owlRoutes registers Owl's own operations (/owl/v1) and the HTTP
// endpoints functions have (function URLs, the route table); h registers
// an authenticated operation.
func (a *API) owlRoutes(h func(pattern string, limit int64, fn handlerFunc)) {
	h("GET /owl/v1/layers/{name}/versions/{version}/content", 0, a.layerContent)
	h("GET /metrics", 0, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		if a.opts.Metrics == nil {
			return lambdaerr.New(lambdaerr.UnknownOperation, "Metrics are not enabled on this node.")
		}
		a.opts.Metrics.ServeHTTP(w, r)
		return nil
	})
	h("GET /owl/v1/functions/{name}/logs", 0, a.functionLogs)
	h("GET /owl/v1/functions/{name}/code", 0, a.functionCode)
	h("GET /owl/v1/runtimes", 0, a.listRuntimes)
	h("GET /owl/v1/usage", 0, a.getUsage)
	h("GET /owl/v1/nodes", 0, a.listNodes)
	h("POST /owl/v1/nodes/{name}/drain", 1<<10, a.drainNode)
	h("GET /owl/v1/metrics/history", 0, a.getHistory)
	h("GET /owl/v1/events", 0, a.listEvents)
	h("GET /owl/v1/events/{id}", 0, a.getEvent)
	h("POST /owl/v1/events/replay", 1<<16, a.replayEvents)
	h("POST /owl/v1/events/publish", events.MaxPayload+1<<16, a.publishEvent)
	a.streamRoutes(h)
	h("POST /owl/v1/triggers", events.MaxPayload+1<<16, a.createTrigger)
	h("GET /owl/v1/triggers", 0, a.listTriggers)
	h("GET /owl/v1/triggers/{name}", 0, a.getTrigger)
	h("DELETE /owl/v1/triggers/{name}", 0, a.deleteTrigger)
	h("POST /owl/v1/routes", 1<<16, a.addRoute)
	h("GET /owl/v1/routes", 0, a.listRoutes)
	h("DELETE /owl/v1/routes/{id}", 0, a.deleteRoute)
	// The function URLs and routes themselves: public or SigV4, as each is
	// configured.
	a.mux.Handle(urlPathPrefix, http.HandlerFunc(a.serveFunctionURL))
	a.mux.Handle(routesPrefix+"/", http.HandlerFunc(a.serveRoutes))
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.opts.Console != nil && r.URL.Path == "/" && r.Method == http.MethodGet && acceptsHTML(r) {
		// A browser opening the API's address: the console. API clients
		// (no text/html in Accept) keep their answer.
		http.Redirect(w, r, "/console/", http.StatusFound)
		return
	}
	w.Header().Set("x-amzn-RequestId", lambdawire.NewRequestID())
	if !cleanPath(r.URL.Path) {
		// ServeMux would answer a redirect to the cleaned path: a path
		// with "." or ".." segments or an empty one names no operation.
		a.unknown.ServeHTTP(w, r)
		return
	}
	if a.workerOnly != nil {
		a.workerOnly.ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// acceptsHTML reports whether r's Accept header lists text/html, as a
// browser's navigation does.
func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			media, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(media), "text/html") {
				return true
			}
		}
	}
	return false
}

// cleanPath reports whether p has no empty, "." or ".." segments (a
// trailing slash is fine).
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	p = strings.TrimSuffix(p[1:], "/")
	if p == "" {
		return true
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// errTooLarge marks a request body past its operation's limit.
var errTooLarge = errors.New("request body too large")

// authenticated authenticates the request, reads its body (up to limit
// bytes; 0 means the operation takes none worth reading: 64 KiB at most),
// then runs fn. The headers are checked before a byte of the body is read
// (bodies.go): a client that cannot authenticate costs the server its
// headers, never a body.
func (a *API) authenticated(limit int64, fn handlerFunc) http.Handler {
	return a.authenticatedWith(a.auth, a.opts.Sessions, limit, fn)
}

// authenticateHeaders is authn.AuthenticateHeaders, or, when sessions is
// set and r has no Authorization header but a session cookie, the
// console's session (auth.Sessions.Authenticate: the cookie and, to change
// anything, the CSRF header).
func authenticateHeaders(authn *auth.Authenticator, sessions *auth.Sessions, r *http.Request) (*auth.Pending, error) {
	if sessions != nil && len(r.Header.Values("Authorization")) == 0 && auth.HasSessionCookie(r) {
		_, err := sessions.Authenticate(r)
		return nil, err
	}
	_, verify, err := authn.AuthenticateHeaders(r)
	return verify, err
}

// authenticatedWith is authenticated against authn's credentials, and
// sessions' when not nil.
func (a *API) authenticatedWith(authn *auth.Authenticator, sessions *auth.Sessions, limit int64, fn handlerFunc) http.Handler {
	limit = effectiveLimit(limit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify, err := authenticateHeaders(authn, sessions, r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		pending := verify != nil
		body, held, err := a.readBody(w, r, limit, pending)
		if err != nil {
			a.refuseBody(w, r, err, limit)
			return
		}
		if pending {
			_, err = verify.Verify(body)
		} else {
			err = auth.CheckBody(r, body)
		}
		if err != nil {
			a.bodies.give(held, pending)
			a.refuse(w, r, err)
			return
		}
		if pending {
			a.bodies.authenticatedNow(held)
		}
		defer a.bodies.give(held, false)
		if err := fn(w, r, body); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// refuse answers err and closes the connection: a refused request's body
// may be unread, and a client that was refused has no use for the
// connection.
func (a *API) refuse(w http.ResponseWriter, r *http.Request, err error) {
	w.Header().Set("Connection", "close")
	a.writeError(w, r, err)
}

func tooLarge(r *http.Request, limit int64) error {
	if r.Method == http.MethodPost && len(r.URL.Path) > len("/invocations") && r.URL.Path[len(r.URL.Path)-len("/invocations"):] == "/invocations" {
		return lambdaerr.New(lambdaerr.RequestTooLarge, "Request must be smaller than %d bytes for the InvokeFunction operation", limit)
	}
	return lambdaerr.New(lambdaerr.RequestEntityTooLarge, "Request must be smaller than %d bytes for the operation", limit)
}

// noBodyLimit is what an operation without a body reads at most.
const noBodyLimit = 64 << 10

func effectiveLimit(limit int64) int64 {
	if limit <= 0 {
		return noBodyLimit
	}
	return limit
}

// qualified parses the {name} path value (name, name:qualifier or an ARN)
// and the Qualifier query parameter, which must agree when both are given.
func qualified(r *http.Request) (name, q string, err error) {
	name, q, err = registry.ParseName(r.PathValue("name"))
	if err != nil {
		return "", "", err
	}
	if qp := r.URL.Query().Get("Qualifier"); qp != "" {
		if q != "" && q != qp {
			return "", "", lambdaerr.New(lambdaerr.InvalidParameterValue,
				"The derived qualifier from the function name does not match the specified qualifier.")
		}
		q = qp
	}
	return name, q, nil
}

// resolve loads what the request's function name and qualifier designate:
// $LATEST, a published version, or an alias's primary version.
func (a *API) resolve(ctx context.Context, r *http.Request) (registry.Target, error) {
	name, q, err := qualified(r)
	if err != nil {
		return registry.Target{}, err
	}
	return a.reg.Resolve(ctx, name, q)
}

// functionLogs is GET /owl/v1/functions/{name}/logs: the most recent
// lines (?limit, 1000 by default) that ?since, ?until (RFC 3339), ?request
// (a request id) and ?Qualifier (a version, or an alias: the versions it
// routes to) select, as text or (?format=json) one lambdawire.LogLine a
// line; ?follow=true goes on streaming them (followLogs).
func (a *API) functionLogs(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fn, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	qv := r.URL.Query()
	q := telemetry.LogQuery{RequestID: qv.Get("request"), Versions: logVersions(fn)}
	if q.Since, err = timeParam(qv.Get("since"), "since"); err != nil {
		return err
	}
	if q.Until, err = timeParam(qv.Get("until"), "until"); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "until is before since.")
	}
	format := qv.Get("format")
	if format != "" && format != "text" && format != "json" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "format %q is not text or json.", format)
	}
	if qv.Get("follow") == "true" {
		return a.followLogs(w, r, fn.Name, q, format == "json")
	}
	limit := 1000
	if s := qv.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100000 {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "limit must be an integer from 1 to 100000")
		}
	}
	lines, err := a.logs.Tail(r.Context(), fn.Name, q, limit)
	if err != nil {
		return err
	}
	setLogContentType(w, format == "json")
	_, _ = w.Write(appendLogLines(nil, lines, format == "json"))
	return nil
}

// logVersions is the versions a qualified logs request selects: none (all)
// without a qualifier, an alias's versions, else the one version.
func logVersions(t registry.Target) []string {
	switch {
	case t.Qualifier == "":
		return nil
	case t.Alias != nil:
		vs := []string{t.Alias.FunctionVersion}
		for v := range t.Alias.AdditionalVersionWeights {
			vs = append(vs, v)
		}
		return vs
	case t.Version == "":
		return []string{registry.Latest}
	}
	return []string{t.Version}
}

func setLogContentType(w http.ResponseWriter, asJSON bool) {
	if asJSON {
		w.Header().Set("Content-Type", "application/x-ndjson")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
}

// appendLogLines appends lines to b as text (their messages) or JSON, one
// a line.
func appendLogLines(b []byte, lines []lambdawire.LogLine, asJSON bool) []byte {
	for _, l := range lines {
		if asJSON {
			j, _ := json.Marshal(l)
			b = append(b, j...)
		} else {
			b = append(b, l.Message...)
		}
		b = append(b, '\n')
	}
	return b
}

func (a *API) functionCode(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fn, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	return a.writeZip(w, r, fn.CodeSha256Hex, fn.Name+".zip")
}

// writeZip answers with a stored zip (function code or a layer version).
func (a *API) writeZip(w http.ResponseWriter, r *http.Request, shaHex, filename string) error {
	zip, err := a.reg.Code(r.Context(), shaHex)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filename))
	_, _ = w.Write(zip)
	return nil
}

func (a *API) listRuntimes(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	out := lambdawire.RuntimeList{Runtimes: []lambdawire.Runtime{}}
	for _, id := range runtimes.IDs() {
		rt, _ := runtimes.Lookup(id)
		kind := "interpreted"
		if rt.Provided() {
			kind = "provided"
		}
		out.Runtimes = append(out.Runtimes, lambdawire.Runtime{ID: id, Kind: kind, ExecutionEnv: rt.ExecutionEnv})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
