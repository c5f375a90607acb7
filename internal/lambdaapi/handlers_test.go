package lambdaapi_test

// Handler tests without root: the real registry on an in-process NATS
// server, a fake worker at the invoker seam (lambdaapi.Invoker) and
// bearer-token authentication, driven over HTTP as a client would.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

const (
	testToken = "handler-test-token"
	fns       = "/2015-03-31/functions"
)

// fakeWorker stands at the invoker seam. Like the real worker's idle
// pool, it keeps one warm environment per function version, started with
// the configuration it was first handed, and only the registry's change
// feed retires it: it deliberately ignores the revision of later
// requests, so it serves an old configuration unless the change path
// reached it before the next invocation.
type fakeWorker struct {
	mu      sync.Mutex
	warm    map[string]registry.Function // by "name:version"
	calls   []lambdaapi.InvokeRequest
	changes []registry.Change
	ready   map[string]int // provisioned environments by "name:version"
	// answer, when set, replaces running the function.
	answer func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error)
}

func newFakeWorker() *fakeWorker {
	return &fakeWorker{warm: map[string]registry.Function{}, ready: map[string]int{}}
}

// ran is what the fake's function answers: the configuration its
// environment was started with, and the payload it got.
type ran struct {
	Version    string `json:"version"`
	RevisionID string `json:"revision"`
	CodeSha256 string `json:"code"`
	Payload    string `json:"payload"`
}

func (f *fakeWorker) Invoke(_ context.Context, req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	if f.answer != nil {
		return f.answer(req)
	}
	key := req.Function.Name + ":" + req.Function.Version
	env, ok := f.warm[key]
	if !ok {
		env = req.Function
		f.warm[key] = env
	}
	out, _ := json.Marshal(ran{Version: env.Version, RevisionID: env.RevisionID,
		CodeSha256: registry.CodeSha256(env.CodeSha256Hex), Payload: string(req.Payload)})
	return &lambdaapi.InvokeResult{Payload: out, Log: "START\nhello from " + key + "\nREPORT\n"}, nil
}

func (f *fakeWorker) Provisioned(name, version string) (int, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready[name+":"+version], ""
}

// change is the fake's registry.OnChange subscriber, the one path by which
// changes reach a worker (server/changes.go wires the real one). It takes
// its time, as destroying environments does, so that a write returning
// before its change was handled shows.
func (f *fakeWorker) change(c registry.Change) {
	time.Sleep(20 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, c)
	if c.Provisioned {
		return
	}
	for key, env := range f.warm {
		if env.Name == c.Name && (c.Version == "" || env.Version == c.Version) && env.RevisionID != c.Revision {
			delete(f.warm, key)
		}
	}
}

func (f *fakeWorker) heard(c registry.Change) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.changes {
		if h == c {
			return true
		}
	}
	return false
}

func (f *fakeWorker) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeWorker) lastCall() lambdaapi.InvokeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[len(f.calls)-1]
}

type harness struct {
	t      *testing.T
	url    string
	reg    *registry.Registry
	worker *fakeWorker
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	bus := natstest.Start(t)
	reg, err := registry.Open(ctx, bus.JS, registry.Options{
		Region: "us-east-1", AccountID: "000000000000", CodeStorageLimit: 1 << 30, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	fw := newFakeWorker()
	reg.OnChange(fw.change)
	authn, err := auth.NewAuthenticator([]auth.Credentials{{Token: testToken}})
	if err != nil {
		t.Fatal(err)
	}
	api := lambdaapi.New(lambdaapi.Options{
		Region: "us-east-1", AccountID: "000000000000", CodeStorageLimit: 1 << 30,
		ConcurrencyLimit: 1000, ZipLimits: codezip.DefaultLimits(), UploadDir: t.TempDir(), Logger: quiet,
	}, authn, reg, fw, nil)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &harness{t: t, url: srv.URL, reg: reg, worker: fw}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends an authenticated request; body is JSON-encoded unless it is
// already bytes. headers are name, value pairs.
func (h *harness) do(method, path string, body any, headers ...string) *response {
	h.t.Helper()
	return h.send(method, path, body, append([]string{"Authorization", "Bearer " + testToken}, headers...)...)
}

func (h *harness) send(method, path string, body any, headers ...string) *response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

// ok checks r's status and decodes its body into v (when not nil).
func (r *response) ok(t *testing.T, status int, v any) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decoding %s: %v", r.body, err)
		}
	}
}

// fails checks that r is Lambda's error code with its status.
func (r *response) fails(t *testing.T, code string) {
	t.Helper()
	status := lambdaerr.New(code, "").Status()
	if r.status != status || r.header.Get("X-Amzn-ErrorType") != code {
		t.Fatalf("got %d %s, want %d %s: %s", r.status, r.header.Get("X-Amzn-ErrorType"), status, code, r.body)
	}
}

func zipOf(t *testing.T, content string) []byte {
	return testkit.Zip(t, map[string]string{"bootstrap": content})
}

func (h *harness) create(name string) lambdawire.FunctionConfiguration {
	h.t.Helper()
	var fc lambdawire.FunctionConfiguration
	h.do("POST", fns, map[string]any{
		"FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
		"Role": "arn:aws:iam::000000000000:role/test", "Code": map[string]any{"ZipFile": zipOf(h.t, "v1")},
	}).ok(h.t, http.StatusCreated, &fc)
	return fc
}

// invoke runs name (qualified or not) and decodes what the fake ran.
func (h *harness) invoke(name string) ran {
	h.t.Helper()
	var out ran
	h.do("POST", fns+"/"+name+"/invocations", []byte(`{"n":1}`)).ok(h.t, http.StatusOK, &out)
	return out
}

func TestFunctionLifecycle(t *testing.T) {
	h := newHarness(t)
	created := h.create("fn")
	if created.Version != registry.Latest || created.RevisionId == "" || created.CodeSha256 == "" ||
		created.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:fn" {
		t.Fatalf("created %+v", created)
	}
	h.do("POST", fns, map[string]any{
		"FunctionName": "fn", "Runtime": "provided.al2023", "Handler": "bootstrap",
		"Code": map[string]any{"ZipFile": zipOf(t, "v1")},
	}).fails(t, lambdaerr.ResourceConflict)

	var got struct {
		Configuration lambdawire.FunctionConfiguration
		Code          struct{ RepositoryType string }
	}
	h.do("GET", fns+"/fn", nil).ok(t, http.StatusOK, &got)
	if got.Configuration.RevisionId != created.RevisionId || got.Code.RepositoryType != "S3" {
		t.Errorf("GetFunction = %+v", got)
	}
	var list struct {
		Functions []lambdawire.FunctionConfiguration
	}
	h.do("GET", fns, nil).ok(t, http.StatusOK, &list)
	if len(list.Functions) != 1 || list.Functions[0].FunctionName != "fn" {
		t.Errorf("ListFunctions = %+v", list)
	}

	var updated lambdawire.FunctionConfiguration
	h.do("PUT", fns+"/fn/configuration", map[string]any{"Timeout": 9, "Environment": map[string]any{"Variables": map[string]string{"GREETING": "hi"}}}).
		ok(t, http.StatusOK, &updated)
	if updated.Timeout != 9 || updated.Environment == nil || updated.Environment.Variables["GREETING"] != "hi" || updated.RevisionId == created.RevisionId {
		t.Errorf("UpdateFunctionConfiguration = %+v", updated)
	}
	h.do("PUT", fns+"/fn/configuration", map[string]any{"Timeout": 9, "RevisionId": created.RevisionId}).
		fails(t, lambdaerr.PreconditionFailed)
	h.do("PUT", fns+"/fn/configuration", map[string]any{"Timeout": 0}).fails(t, lambdaerr.Validation)

	var recoded lambdawire.FunctionConfiguration
	h.do("PUT", fns+"/fn/code", map[string]any{"ZipFile": zipOf(t, "v2")}).ok(t, http.StatusOK, &recoded)
	if recoded.CodeSha256 == updated.CodeSha256 || recoded.Timeout != 9 {
		t.Errorf("UpdateFunctionCode = %+v", recoded)
	}
	h.do("PUT", fns+"/fn/code", map[string]any{"ZipFile": []byte("not a zip")}).fails(t, lambdaerr.InvalidParameterValue)

	h.do("DELETE", fns+"/fn", nil).ok(t, http.StatusNoContent, nil)
	if !h.worker.heard(registry.Change{Name: "fn", Version: registry.Latest}) {
		t.Error("DeleteFunction returned before the worker heard of the deletion")
	}
	h.do("GET", fns+"/fn", nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("DELETE", fns+"/fn", nil).fails(t, lambdaerr.ResourceNotFound)
}

// An invocation right after an update runs the new configuration: the
// update returns only once the change has reached this node's worker
// (through the registry's change feed, the only path).
func TestInvokeRightAfterUpdateRunsTheNewCode(t *testing.T) {
	h := newHarness(t)
	created := h.create("fn")
	if got := h.invoke("fn"); got.CodeSha256 != created.CodeSha256 {
		t.Fatalf("first invocation ran code %s, want %s", got.CodeSha256, created.CodeSha256)
	}
	for i := range 5 {
		var recoded lambdawire.FunctionConfiguration
		h.do("PUT", fns+"/fn/code", map[string]any{"ZipFile": zipOf(t, "v"+string(rune('2'+i)))}).ok(t, http.StatusOK, &recoded)
		if got := h.invoke("fn"); got.CodeSha256 != recoded.CodeSha256 || got.RevisionID != recoded.RevisionId {
			t.Fatalf("invocation right after UpdateFunctionCode ran %+v, want code %s revision %s", got, recoded.CodeSha256, recoded.RevisionId)
		}
		var reconfigured lambdawire.FunctionConfiguration
		h.do("PUT", fns+"/fn/configuration", map[string]any{"Timeout": 3 + i}).ok(t, http.StatusOK, &reconfigured)
		if got := h.invoke("fn"); got.RevisionID != reconfigured.RevisionId {
			t.Fatalf("invocation right after UpdateFunctionConfiguration ran revision %s, want %s", got.RevisionID, reconfigured.RevisionId)
		}
	}
}

func TestVersionsAndAliases(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	var v1 lambdawire.FunctionConfiguration
	h.do("POST", fns+"/fn/versions", map[string]any{"Description": "first"}).ok(t, http.StatusCreated, &v1)
	if v1.Version != "1" || v1.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:fn:1" {
		t.Fatalf("PublishVersion = %+v", v1)
	}
	h.do("PUT", fns+"/fn/code", map[string]any{"ZipFile": zipOf(t, "v2"), "Publish": true}).ok(t, http.StatusOK, nil)
	var versions struct {
		Versions []lambdawire.FunctionConfiguration
	}
	h.do("GET", fns+"/fn/versions", nil).ok(t, http.StatusOK, &versions)
	if len(versions.Versions) != 3 || versions.Versions[0].Version != registry.Latest || versions.Versions[2].Version != "2" {
		t.Fatalf("ListVersionsByFunction = %+v", versions)
	}

	var alias lambdawire.AliasConfiguration
	h.do("POST", fns+"/fn/aliases", map[string]any{"Name": "live", "FunctionVersion": "1"}).ok(t, http.StatusCreated, &alias)
	if alias.AliasArn != "arn:aws:lambda:us-east-1:000000000000:function:fn:live" || alias.FunctionVersion != "1" {
		t.Fatalf("CreateAlias = %+v", alias)
	}
	h.do("POST", fns+"/fn/aliases", map[string]any{"Name": "live", "FunctionVersion": "1"}).fails(t, lambdaerr.ResourceConflict)
	h.do("POST", fns+"/fn/aliases", map[string]any{"Name": "bad", "FunctionVersion": "9"}).fails(t, lambdaerr.ResourceNotFound)

	resp := h.do("POST", fns+"/fn/invocations?Qualifier=live", []byte(`{}`))
	resp.ok(t, http.StatusOK, nil)
	call := h.worker.lastCall()
	if resp.header.Get("X-Amz-Executed-Version") != "1" || call.Function.Version != "1" ||
		call.InvokedARN != "arn:aws:lambda:us-east-1:000000000000:function:fn:live" {
		t.Errorf("invoking fn:live executed %q, ran %s as %s", resp.header.Get("X-Amz-Executed-Version"), call.Function.Version, call.InvokedARN)
	}
	if got := h.invoke("fn:2"); got.Version != "2" {
		t.Errorf("invoking fn:2 ran version %s", got.Version)
	}

	h.do("PUT", fns+"/fn/aliases/live", map[string]any{"FunctionVersion": "2"}).ok(t, http.StatusOK, &alias)
	h.do("GET", fns+"/fn/aliases/live", nil).ok(t, http.StatusOK, &alias)
	if alias.FunctionVersion != "2" {
		t.Errorf("GetAlias after UpdateAlias = %+v", alias)
	}
	var aliases struct {
		Aliases []lambdawire.AliasConfiguration
	}
	h.do("GET", fns+"/fn/aliases", nil).ok(t, http.StatusOK, &aliases)
	if len(aliases.Aliases) != 1 {
		t.Errorf("ListAliases = %+v", aliases)
	}

	h.do("DELETE", fns+"/fn?Qualifier=2", nil).fails(t, lambdaerr.ResourceConflict) // live routes to it
	h.do("DELETE", fns+"/fn?Qualifier=live", nil).fails(t, lambdaerr.InvalidParameterValue)
	h.do("DELETE", fns+"/fn?Qualifier=$LATEST", nil).fails(t, lambdaerr.InvalidParameterValue)
	h.do("DELETE", fns+"/fn/aliases/live", nil).ok(t, http.StatusNoContent, nil)
	h.do("GET", fns+"/fn/aliases/live", nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("DELETE", fns+"/fn?Qualifier=1", nil).ok(t, http.StatusNoContent, nil)
	if !h.worker.heard(registry.Change{Name: "fn", Version: "1"}) {
		t.Error("DeleteFunction of version 1 returned before the worker heard of it")
	}
	h.do("POST", fns+"/fn/invocations?Qualifier=1", []byte(`{}`)).fails(t, lambdaerr.ResourceNotFound)
}

func TestConcurrencySettings(t *testing.T) {
	h := newHarness(t)
	created := h.create("fn")
	var reserved map[string]int
	h.do("PUT", "/2017-10-31/functions/fn/concurrency", map[string]any{"ReservedConcurrentExecutions": 5}).ok(t, http.StatusOK, &reserved)
	h.do("GET", "/2019-09-30/functions/fn/concurrency", nil).ok(t, http.StatusOK, &reserved)
	if reserved["ReservedConcurrentExecutions"] != 5 {
		t.Errorf("GetFunctionConcurrency = %v", reserved)
	}
	var settings struct {
		AccountLimit struct{ UnreservedConcurrentExecutions int }
	}
	h.do("GET", "/2016-08-19/account-settings", nil).ok(t, http.StatusOK, &settings)
	if settings.AccountLimit.UnreservedConcurrentExecutions != 995 {
		t.Errorf("account settings: %+v", settings)
	}
	var latest lambdawire.FunctionConfiguration
	h.do("GET", fns+"/fn/configuration", nil).ok(t, http.StatusOK, &latest)
	if latest.RevisionId != created.RevisionId {
		t.Errorf("reserving concurrency changed $LATEST's RevisionId")
	}
	h.do("PUT", "/2017-10-31/functions/fn/concurrency", map[string]any{"ReservedConcurrentExecutions": 901}).
		fails(t, lambdaerr.InvalidParameterValue)
	h.do("PUT", "/2017-10-31/functions/fn/concurrency", map[string]any{}).fails(t, lambdaerr.Validation)
	h.do("DELETE", "/2017-10-31/functions/fn/concurrency", nil).ok(t, http.StatusNoContent, nil)
	reserved = nil
	h.do("GET", "/2019-09-30/functions/fn/concurrency", nil).ok(t, http.StatusOK, &reserved)
	if len(reserved) != 0 {
		t.Errorf("GetFunctionConcurrency after delete = %v", reserved)
	}

	const pc = "/2019-09-30/functions/fn/provisioned-concurrency"
	h.do("POST", fns+"/fn/versions", map[string]any{}).ok(t, http.StatusCreated, nil)
	h.do("PUT", pc, map[string]any{"ProvisionedConcurrentExecutions": 2}).fails(t, lambdaerr.Validation)
	h.do("PUT", pc+"?Qualifier=$LATEST", map[string]any{"ProvisionedConcurrentExecutions": 2}).fails(t, lambdaerr.InvalidParameterValue)
	var status struct {
		RequestedProvisionedConcurrentExecutions int
		AvailableProvisionedConcurrentExecutions int
		Status                                   string
	}
	h.do("PUT", pc+"?Qualifier=1", map[string]any{"ProvisionedConcurrentExecutions": 2}).ok(t, http.StatusAccepted, &status)
	if status.RequestedProvisionedConcurrentExecutions != 2 || status.Status != "IN_PROGRESS" {
		t.Errorf("PutProvisionedConcurrencyConfig = %+v", status)
	}
	if !h.worker.heard(registry.Change{Name: "fn", Version: "1", Provisioned: true}) {
		t.Error("PutProvisionedConcurrencyConfig returned before the worker heard of it")
	}
	h.worker.mu.Lock()
	h.worker.ready["fn:1"] = 2
	h.worker.mu.Unlock()
	h.do("GET", pc+"?Qualifier=1", nil).ok(t, http.StatusOK, &status)
	if status.AvailableProvisionedConcurrentExecutions != 2 || status.Status != "READY" {
		t.Errorf("GetProvisionedConcurrencyConfig = %+v", status)
	}
	h.do("DELETE", fns+"/fn?Qualifier=1", nil).fails(t, lambdaerr.ResourceConflict)
	h.do("DELETE", pc+"?Qualifier=1", nil).ok(t, http.StatusNoContent, nil)
	h.do("GET", pc+"?Qualifier=1", nil).fails(t, lambdaerr.ProvisionedConfigNotFound)
}

const xrayHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

// TestInvokeTraceHeaders: the worker gets the invocation's trace as an
// X-Ray header: X-Amzn-Trace-Id, else traceparent converted, else (none,
// or malformed, which is no error) a new root.
func TestInvokeTraceHeaders(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	newRoot := regexp.MustCompile(`^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=1$`)
	for _, c := range []struct {
		hdr  []string
		want *regexp.Regexp
	}{
		{[]string{"X-Amzn-Trace-Id", xrayHeader}, regexp.MustCompile("^" + regexp.QuoteMeta(xrayHeader) + "$")},
		{[]string{"traceparent", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"}, regexp.MustCompile("^" + regexp.QuoteMeta(xrayHeader) + "$")},
		{nil, newRoot},
		{[]string{"X-Amzn-Trace-Id", "Root=1-abc"}, newRoot},
		{[]string{"traceparent", "00-nonsense"}, newRoot},
	} {
		h.do("POST", fns+"/fn/invocations", []byte(`{}`), c.hdr...).ok(t, http.StatusOK, nil)
		if got := h.worker.lastCall().TraceID; !c.want.MatchString(got) {
			t.Errorf("%q: the worker got trace %q, want %v", c.hdr, got, c.want)
		}
	}
}

func TestInvoke(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"a":"b"}}`))
	resp := h.do("POST", fns+"/fn/invocations", []byte(`{"hello":"world"}`),
		"X-Amz-Invocation-Type", "RequestResponse", "X-Amz-Log-Type", "Tail",
		"X-Amz-Client-Context", cc, "X-Amzn-Trace-Id", xrayHeader)
	var out ran
	resp.ok(t, http.StatusOK, &out)
	call := h.worker.lastCall()
	if out.Payload != `{"hello":"world"}` || call.ClientContext != `{"custom":{"a":"b"}}` || call.TraceID != xrayHeader ||
		call.RequestID == "" || call.RequestID != resp.header.Get("x-amzn-RequestId") ||
		call.InvokedARN != "arn:aws:lambda:us-east-1:000000000000:function:fn" {
		t.Errorf("the worker got %+v (payload %s)", call, out.Payload)
	}
	if resp.header.Get("X-Amz-Executed-Version") != registry.Latest || resp.header.Get("X-Amz-Function-Error") != "" {
		t.Errorf("headers %v", resp.header)
	}
	if tail, _ := base64.StdEncoding.DecodeString(resp.header.Get("X-Amz-Log-Result")); !strings.Contains(string(tail), "hello from fn:$LATEST") {
		t.Errorf("X-Amz-Log-Result = %q", tail)
	}
	h.invoke("fn")
	if call := h.worker.lastCall(); string(call.Payload) != `{"n":1}` {
		t.Errorf("payload %s", call.Payload)
	}
	// An empty body is the empty object.
	h.do("POST", fns+"/fn/invocations", nil).ok(t, http.StatusOK, nil)
	if call := h.worker.lastCall(); string(call.Payload) != `{}` {
		t.Errorf("empty body became %s", call.Payload)
	}

	n := h.worker.callCount()
	resp = h.do("POST", fns+"/fn/invocations", []byte(`{}`), "X-Amz-Invocation-Type", "DryRun")
	resp.ok(t, http.StatusNoContent, nil)
	if resp.header.Get("X-Amz-Executed-Version") != registry.Latest || h.worker.callCount() != n {
		t.Errorf("DryRun: version %q, the worker ran %d invocations", resp.header.Get("X-Amz-Executed-Version"), h.worker.callCount()-n)
	}
	h.do("POST", fns+"/missing/invocations", []byte(`{}`), "X-Amz-Invocation-Type", "DryRun").fails(t, lambdaerr.ResourceNotFound)
	if h.worker.callCount() != n {
		t.Error("a refused invocation reached the worker")
	}
}

// The invoke path's errors: the client's mistakes before the worker, and
// the worker's answers mapped onto Lambda's.
func TestInvokeErrors(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	invocations := fns + "/fn/invocations"
	for _, tc := range []struct {
		name    string
		path    string
		body    []byte
		headers []string
		code    string
	}{
		{"unknown function", fns + "/missing/invocations", []byte(`{}`), nil, lambdaerr.ResourceNotFound},
		{"unknown qualifier", invocations + "?Qualifier=nope", []byte(`{}`), nil, lambdaerr.ResourceNotFound},
		{"unknown version", fns + "/fn:7/invocations", []byte(`{}`), nil, lambdaerr.ResourceNotFound},
		{"body not JSON", invocations, []byte(`{nope`), nil, lambdaerr.InvalidRequestContent},
		{"client context not base64", invocations, []byte(`{}`), []string{"X-Amz-Client-Context", "%%%"}, lambdaerr.InvalidParameterValue},
		{"client context too large", invocations, []byte(`{}`), []string{"X-Amz-Client-Context", strings.Repeat("e30=", 1000)}, lambdaerr.InvalidParameterValue},
		{"asynchronous", invocations, []byte(`{}`), []string{"X-Amz-Invocation-Type", "Event"}, lambdaerr.InvalidParameterValue},
		{"unknown invocation type", invocations, []byte(`{}`), []string{"X-Amz-Invocation-Type", "Later"}, lambdaerr.Validation},
		{"unknown log type", invocations, []byte(`{}`), []string{"X-Amz-Log-Type", "All"}, lambdaerr.Validation},
		{"bad function name", fns + "/no%20spaces/invocations", []byte(`{}`), nil, lambdaerr.Validation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.do("POST", tc.path, tc.body, tc.headers...).fails(t, tc.code)
		})
	}
	if n := h.worker.callCount(); n != 0 {
		t.Errorf("%d refused invocations reached the worker", n)
	}

	t.Run("function error", func(t *testing.T) {
		body := lambdaerr.ErrorBody(lambdaerr.RuntimeExitError, "exit status 1")
		h.worker.mu.Lock()
		h.worker.answer = func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			return &lambdaapi.InvokeResult{Payload: body, FunctionError: true, ErrorType: lambdaerr.RuntimeExitError}, nil
		}
		h.worker.mu.Unlock()
		resp := h.do("POST", invocations, []byte(`{}`))
		resp.ok(t, http.StatusOK, nil)
		if resp.header.Get("X-Amz-Function-Error") != "Unhandled" || !bytes.Equal(resp.body, body) {
			t.Errorf("function error answered %v %s", resp.header, resp.body)
		}
	})
	t.Run("throttled", func(t *testing.T) {
		h.worker.mu.Lock()
		h.worker.answer = func(lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
			return nil, &lambdaerr.Error{Code: lambdaerr.TooManyRequests, Message: "Rate Exceeded.",
				Reason: "ReservedFunctionConcurrentInvocationLimitExceeded", RetryAfter: 1}
		}
		h.worker.mu.Unlock()
		resp := h.do("POST", invocations, []byte(`{}`))
		resp.fails(t, lambdaerr.TooManyRequests)
		var body struct{ Reason string }
		resp.ok(t, http.StatusTooManyRequests, &body)
		if resp.header.Get("Retry-After") != "1" || body.Reason != "ReservedFunctionConcurrentInvocationLimitExceeded" {
			t.Errorf("throttle answered %v %s", resp.header, resp.body)
		}
	})
}

func TestAuthenticationIsRequired(t *testing.T) {
	h := newHarness(t)
	h.send("GET", fns, nil).fails(t, lambdaerr.MissingAuthenticationToken)
	h.send("GET", fns, nil, "Authorization", "Bearer wrong").fails(t, lambdaerr.UnrecognizedClient)
	h.send("POST", fns+"/fn/invocations", []byte(`{}`), "Authorization", "Bearer wrong").fails(t, lambdaerr.UnrecognizedClient)
	if h.worker.callCount() != 0 {
		t.Error("an unauthenticated invocation reached the worker")
	}
	var health struct{}
	h.send("GET", "/healthz", nil).ok(t, http.StatusOK, &health)
}
