package server_test

// Scale per request, never pay for idle: concurrency limits, reserved and
// provisioned concurrency, the memory budget, keep-alive and lifetime.
// Behaviour, not timings.

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
)

// holdBusy starts an invocation of name that sleeps until release is
// closed (up to 60 s), and returns once it is running in its sandbox. The
// returned wait blocks until it finished and returns its HTTP status.
func (ts *testServer) holdBusy(name string, release <-chan struct{}) (wait func() int) {
	ts.t.Helper()
	marker := fmt.Sprintf("/tmp/busy-%d", time.Now().UnixNano())
	done := make(chan int, 1)
	go func() {
		resp, _ := ts.rawInvoke(name+"/invocations", fmt.Sprintf(`{"action":"sleep","ms":60000,"path":%q}`, marker), nil)
		done <- resp.StatusCode
	}()
	fnName, _, _ := strings.Cut(name, ":")
	inFlight(ts.t, ts.dataDir, fnName, marker)
	inst := instanceOf(ts.t, ts.dataDir)
	go func() {
		<-release
		for pid := range functionProcesses(inst, fnName) {
			root := fmt.Sprintf("/proc/%d/root", pid)
			if _, err := os.Stat(root + marker); err == nil {
				_ = os.WriteFile(root+marker+".release", nil, 0o644)
			}
		}
	}()
	return func() int { return <-done }
}

func throttleReason(t testing.TB, resp *http.Response, body []byte) string {
	t.Helper()
	e := parseAPIError(t, resp, body)
	if e.status != http.StatusTooManyRequests || e.code != "TooManyRequestsException" {
		t.Fatalf("got %d %s, want 429 TooManyRequestsException: %s", e.status, e.code, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("a throttle without Retry-After: %v", resp.Header)
	}
	reason, _ := e.body["Reason"].(string)
	return reason
}

func TestAccountConcurrencyLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.ConcurrencyLimit = 2 })
	ts.createKitchensink("busy")
	release := make(chan struct{})
	w1, w2 := ts.holdBusy("busy", release), ts.holdBusy("busy", release)

	resp, body := ts.rawInvoke("busy/invocations", `{}`, nil)
	if r := throttleReason(t, resp, body); r != "ConcurrentInvocationLimitExceeded" {
		t.Errorf("Reason = %q", r)
	}
	close(release)
	w1()
	w2()
	if r := ts.invoke("busy", `{}`); r.funcErr != "" {
		t.Errorf("after the limit cleared: %+v", r)
	}
}

func TestReservedConcurrency(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()
	ts.createKitchensink("res", func(in *lambda.CreateFunctionInput) { in.Publish = true })
	ts.createKitchensink("other")

	// 0 throttles every call, of every version.
	if _, err := sdk.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("res"),
		ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"res", "res:1"} {
		resp, body := ts.rawInvoke(q+"/invocations", `{}`, nil)
		if r := throttleReason(t, resp, body); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
			t.Errorf("%s: Reason = %q", q, r)
		}
	}
	if r := ts.invoke("other", `{}`); r.funcErr != "" {
		t.Errorf("another function is throttled too: %+v", r)
	}

	// 1: one runs, the second is throttled; the reservation shows in
	// GetFunction, GetFunctionConcurrency and the account settings.
	if _, err := sdk.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("res"),
		ReservedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	got, err := sdk.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("res")})
	if err != nil || aws.ToInt32(got.ReservedConcurrentExecutions) != 1 {
		t.Errorf("GetFunctionConcurrency = %v, %v", got, err)
	}
	if fn, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("res")}); err != nil ||
		fn.Concurrency == nil || aws.ToInt32(fn.Concurrency.ReservedConcurrentExecutions) != 1 {
		t.Errorf("GetFunction's Concurrency = %v, %v", fn, err)
	}
	settings, err := sdk.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || settings.AccountLimit.UnreservedConcurrentExecutions == nil || *settings.AccountLimit.UnreservedConcurrentExecutions != 999 {
		t.Errorf("UnreservedConcurrentExecutions = %s, %v", jsonOf(settings), err)
	}
	release := make(chan struct{})
	wait := ts.holdBusy("res:1", release)
	resp, body := ts.rawInvoke("res/invocations", `{}`, nil)
	if r := throttleReason(t, resp, body); r != "ReservedFunctionConcurrentInvocationLimitExceeded" {
		t.Errorf("second concurrent invocation: Reason = %q", r)
	}
	close(release)
	wait()

	// More than the account can give is refused, and changes nothing.
	_, err = sdk.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("other"),
		ReservedConcurrentExecutions: aws.Int32(900)})
	wantSDKError(t, err, http.StatusBadRequest, "InvalidParameterValueException")
	if got, _ := sdk.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("other")}); got.ReservedConcurrentExecutions != nil {
		t.Errorf("a refused reservation was stored: %d", *got.ReservedConcurrentExecutions)
	}
	_, err = sdk.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("nosuch"),
		ReservedConcurrentExecutions: aws.Int32(1)})
	wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")

	if _, err := sdk.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("res")}); err != nil {
		t.Fatal(err)
	}
	if r := ts.invoke("res", `{}`); r.funcErr != "" {
		t.Errorf("after DeleteFunctionConcurrency: %+v", r)
	}
}

func TestProvisionedConcurrency(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()
	ts.createKitchensink("warm", func(in *lambda.CreateFunctionInput) { in.Publish = true })
	if _, err := sdk.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("warm"), Name: aws.String("live"),
		FunctionVersion: aws.String("1")}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		qualifier string
		n         int32
		status    int
		code      string
	}{
		{"$LATEST", 1, http.StatusBadRequest, "InvalidParameterValueException"},
		{"9", 1, http.StatusNotFound, "ResourceNotFoundException"},
		{"live", 0, http.StatusBadRequest, "ValidationException"},
	} {
		_, err := sdk.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"),
			Qualifier: aws.String(tc.qualifier), ProvisionedConcurrentExecutions: aws.Int32(tc.n)})
		wantSDKError(t, err, tc.status, tc.code)
	}

	put, err := sdk.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"),
		Qualifier: aws.String("live"), ProvisionedConcurrentExecutions: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(put.RequestedProvisionedConcurrentExecutions) != 2 {
		t.Errorf("Put answered %s", jsonOf(put))
	}
	// Ready before the first call.
	eventually(t, 20*time.Second, func() error {
		got, err := sdk.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"), Qualifier: aws.String("live")})
		if err != nil {
			return err
		}
		if got.Status != types.ProvisionedConcurrencyStatusEnumReady || aws.ToInt32(got.AvailableProvisionedConcurrentExecutions) != 2 {
			return fmt.Errorf("status %s, available %d", got.Status, aws.ToInt32(got.AvailableProvisionedConcurrentExecutions))
		}
		return nil
	})
	if st := ts.Worker().Stats(); st.Environments != 2 {
		t.Errorf("%d environments before the first call, want the 2 provisioned", st.Environments)
	}
	_, _, env, log := ts.ranV("warm:live")
	if strings.Contains(log, "Init Duration") || env["AWS_LAMBDA_INITIALIZATION_TYPE"] != "provisioned-concurrency" || env["AWS_LAMBDA_FUNCTION_VERSION"] != "1" {
		t.Errorf("the first call through the alias: init type %q, version %q\n%s",
			env["AWS_LAMBDA_INITIALIZATION_TYPE"], env["AWS_LAMBDA_FUNCTION_VERSION"], log)
	}
	if st := ts.Worker().Stats(); st.Environments != 2 {
		t.Errorf("%d environments after the first call, want 2", st.Environments)
	}

	list, err := sdk.ListProvisionedConcurrencyConfigs(ctx, &lambda.ListProvisionedConcurrencyConfigsInput{FunctionName: aws.String("warm")})
	if err != nil || len(list.ProvisionedConcurrencyConfigs) != 1 ||
		aws.ToString(list.ProvisionedConcurrencyConfigs[0].FunctionArn) != "arn:aws:lambda:us-east-1:000000000000:function:warm:live" {
		t.Errorf("List = %s, %v", jsonOf(list), err)
	}
	// The alias holds it: the version cannot get its own, nor be deleted.
	_, err = sdk.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"),
		Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(1)})
	wantSDKError(t, err, http.StatusConflict, "ResourceConflictException")

	if _, err := sdk.DeleteProvisionedConcurrencyConfig(ctx, &lambda.DeleteProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"), Qualifier: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"), Qualifier: aws.String("live")})
	wantSDKError(t, err, http.StatusNotFound, "ProvisionedConcurrencyConfigNotFoundException")
	eventually(t, 10*time.Second, func() error {
		if n, _ := ts.Worker().Provisioned("warm", "1"); n != 0 {
			return fmt.Errorf("%d environments still provisioned", n)
		}
		return nil
	})

	// On a version directly; deleting the version is refused while it has one.
	if _, err := sdk.PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("warm"),
		Qualifier: aws.String("1"), ProvisionedConcurrentExecutions: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("warm"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("warm"), Qualifier: aws.String("1")})
	wantSDKError(t, err, http.StatusConflict, "ResourceConflictException")
	// Deleting the function takes everything with it.
	if _, err := sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("warm")}); err != nil {
		t.Fatal(err)
	}
	ts.waitEnvironments(0, "once the function was deleted")
}

// With room for two 128 MB environments, a third function's cold start
// evicts the least recently used idle one; when both are busy, it waits
// CapacityWait and is refused.
func TestMemoryBudgetEvictsAndRefuses(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) {
		c.MemoryBudgetMB, c.MemoryOvercommit, c.CapacityWait = 256, 1, 300*time.Millisecond
	})
	for _, n := range []string{"m-a", "m-b", "m-c"} {
		ts.createKitchensink(n)
	}
	ts.invoke("m-a", `{}`)
	ts.invoke("m-b", `{}`)
	if r := ts.invoke("m-c", `{}`); r.funcErr != "" || !parseReport(t, r.log).cold {
		t.Fatalf("m-c: %+v", r)
	}
	if st := ts.Worker().Stats(); st.Environments != 2 {
		t.Errorf("%d environments, want 2 (m-a evicted)", st.Environments)
	}
	if r := ts.invoke("m-b", `{}`); parseReport(t, r.log).cold {
		t.Errorf("m-b (not the least recently used) was evicted")
	}
	if r := ts.invoke("m-a", `{}`); !parseReport(t, r.log).cold {
		t.Errorf("m-a was not evicted")
	}

	release := make(chan struct{})
	wb, wa := ts.holdBusy("m-b", release), ts.holdBusy("m-a", release)
	resp, body := ts.rawInvoke("m-c/invocations", `{}`, nil)
	if r := throttleReason(t, resp, body); r != "ConcurrentInvocationLimitExceeded" || !strings.Contains(string(body), "memory") {
		t.Errorf("Reason = %q: %s", r, body)
	}
	close(release)
	wb()
	wa()
	if r := ts.invoke("m-c", `{}`); r.funcErr != "" {
		t.Errorf("after memory was freed: %+v", r)
	}
}

func TestKeepAliveAndMaxLifetime(t *testing.T) {
	t.Parallel()
	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, "", func(c *config.Config) { c.IdleTimeout = 300 * time.Millisecond })
		ts.createKitchensink("ka")
		ts.invoke("ka", `{}`)
		ts.waitEnvironments(0, "after the keep-alive")
	})
	t.Run("max lifetime", func(t *testing.T) {
		t.Parallel()
		ts := startServer(t, "", func(c *config.Config) { c.MaxLifetime = 400 * time.Millisecond })
		ts.createKitchensink("life")
		// Busy past its lifetime: it finishes, then is retired, not reused.
		if r := ts.invoke("life", `{"action":"sleep","ms":600}`); r.funcErr != "" {
			t.Fatalf("%+v", r)
		}
		if r := ts.invoke("life", `{}`); !parseReport(t, r.log).cold {
			t.Errorf("an environment past its maximum lifetime served again")
		}
		// Idle past its lifetime: collected although the keep-alive is 10 min.
		ts.waitEnvironments(0, "past their lifetime")
	})
}

// Unpacked code is shared by a version's environments and collected once
// nothing has used it for the keep-alive; code in use stays.
func TestCodeCacheCollected(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.IdleTimeout = 300 * time.Millisecond })
	ts.createKitchensink("cache-a")
	ts.createKitchensink("cache-b", func(in *lambda.CreateFunctionInput) {
		in.Code.ZipFile = kitchenZipWith(t, zipEntry{name: "b.txt", body: "b"})
	})
	codeDirs := func() []string {
		entries, _ := os.ReadDir(filepath.Join(ts.dataDir, "code"))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	ts.invokeAll(2, "cache-a", `{"action":"sleep","ms":100}`)
	if n := len(codeDirs()); n != 1 {
		t.Errorf("two environments of one version unpacked %d code trees, want 1", n)
	}
	release := make(chan struct{})
	wait := ts.holdBusy("cache-b", release)
	// cache-a's tree goes; cache-b's, in use far past the keep-alive, stays.
	eventually(t, 10*time.Second, func() error {
		if dirs := codeDirs(); len(dirs) != 1 || dirs[0] != codeShaHex(t, ts, "cache-b") {
			return fmt.Errorf("code cache holds %v", dirs)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // longer than the keep-alive: the busy tree must survive it
	if dirs := codeDirs(); len(dirs) != 1 {
		t.Fatalf("code in use was collected: %v", dirs)
	}
	close(release)
	wait()
	eventually(t, 10*time.Second, func() error {
		if dirs := codeDirs(); len(dirs) != 0 {
			return fmt.Errorf("code cache still holds %v", dirs)
		}
		return nil
	})
	if r := ts.invoke("cache-a", `{}`); r.funcErr != "" {
		t.Errorf("a cold start after its code was collected: %+v", r)
	}
}

// codeShaHex is the hex sha256 of a function's code (the cache's name).
func codeShaHex(t *testing.T, ts *testServer, name string) string {
	t.Helper()
	out, err := ts.sdk().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := base64.StdEncoding.DecodeString(aws.ToString(out.Configuration.CodeSha256))
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum)
}

// One parent cgroup caps all sandboxes together at the memory budget.
func TestMemoryBudgetCgroup(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.MemoryBudgetMB = 300 })
	inst := instanceOf(t, ts.dataDir)
	found := false
	for _, dir := range instanceCgroups(t, inst) {
		if filepath.Base(dir) != inst {
			continue // a sandbox's own cgroup (pre-warmed, or a cgroup v2 spare's), under the capped one
		}
		for _, file := range []string{"memory.max", "memory.limit_in_bytes"} {
			b, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				continue
			}
			found = true
			if got := strings.TrimSpace(string(b)); got != fmt.Sprint(300<<20) {
				t.Errorf("%s/%s = %s, want %d", dir, file, got, 300<<20)
			}
		}
	}
	if !found {
		t.Fatalf("no memory limit file in the instance's cgroups %v", instanceCgroups(t, inst))
	}
}

// Overcommitted: admission lets a 512 MB function in on a 256 MB budget,
// and when it really uses more than the budget, the kernel kills the
// function's process (Lambda's out-of-memory answer), not Owl.
func TestOvercommittedNodeKillsFunctionsNotOwl(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.MemoryBudgetMB, c.MemoryOvercommit = 256, 4 })
	// The timeout is far beyond what reaching the budget takes on a loaded
	// machine: the function must end killed, never timed out.
	ts.createKitchensink("hog", func(in *lambda.CreateFunctionInput) {
		in.MemorySize, in.Timeout = aws.Int32(512), aws.Int32(120)
	})
	r := ts.invoke("hog", `{"action":"alloc","bytes":419430400}`)
	if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Runtime.ExitError" || !strings.Contains(fmt.Sprint(r.errorObj["errorMessage"]), "signal: killed") {
		t.Errorf("allocating 400 MB under a 256 MB budget: %+v", r)
	}
	if r := ts.invoke("hog", `{"action":"alloc","bytes":104857600}`); r.funcErr != "" {
		t.Errorf("after the kill, within the budget: %+v", r)
	}
}
