package server_test

// Function failures: each gets Lambda's error shape, and the function
// recovers — the next invoke works, in a fresh environment when the old
// one cannot be trusted.

import (
	"context"
	"fmt"
	"github.com/owl-project/owl/internal/config"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

var reportRe = regexp.MustCompile(`(?m)^REPORT RequestId: (\S+)\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms\tMemory Size: (\d+) MB\tMax Memory Used: (\d+) MB(\tInit Duration: (\d+\.\d\d) ms)?(\tStatus: error\tError Type: (\S+))?$`)

// report parses the REPORT line of one invocation's log.
type report struct {
	requestID              string
	durationMs, initMs     float64
	billedMs, memMB, maxMB int
	cold                   bool
	errorType              string // set with "Status: error"
}

func parseReport(t testing.TB, log string) report {
	t.Helper()
	m := reportRe.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no well-formed REPORT line in:\n%s", log)
	}
	var r report
	r.requestID = m[1]
	r.durationMs, _ = strconv.ParseFloat(m[2], 64)
	r.billedMs, _ = strconv.Atoi(m[3])
	r.memMB, _ = strconv.Atoi(m[4])
	r.maxMB, _ = strconv.Atoi(m[5])
	r.cold = m[6] != ""
	r.initMs, _ = strconv.ParseFloat(m[7], 64)
	r.errorType = m[9]
	return r
}

// wantFunctionError checks an Unhandled function error of the given type
// whose errorMessage contains msg.
func wantFunctionError(t testing.TB, r invokeResult, errType, msg string) {
	t.Helper()
	if r.funcErr != "Unhandled" {
		t.Errorf("X-Amz-Function-Error = %q, want Unhandled; payload %s", r.funcErr, r.payload)
	}
	if r.errorObj["errorType"] != errType {
		t.Errorf("errorType = %v, want %s; payload %s", r.errorObj["errorType"], errType, r.payload)
	}
	if m, _ := r.errorObj["errorMessage"].(string); !strings.Contains(m, msg) {
		t.Errorf("errorMessage %q lacks %q", m, msg)
	}
}

// wantWorks checks that name answers a hello invoke, and returns its log.
func (ts *testServer) wantWorks(name string) invokeResult {
	ts.t.Helper()
	r := ts.invoke(name, `{"name":"again"}`)
	if r.funcErr != "" || r.payload != `{"message":"hello again"}` {
		ts.t.Errorf("%s does not work after the failure: %s %s\n%s", name, r.funcErr, r.payload, r.log)
	}
	return r
}

func (ts *testServer) updateConfig(in *lambda.UpdateFunctionConfigurationInput) {
	ts.t.Helper()
	if _, err := ts.sdk().UpdateFunctionConfiguration(context.Background(), in); err != nil {
		ts.t.Fatalf("UpdateFunctionConfiguration %s: %v", aws.ToString(in.FunctionName), err)
	}
}

func TestFunctionFailures(t *testing.T) {
	t.Parallel()
	// No freezing here: "exit while idle" needs a runtime that can run, and
	// so exit, while idle; a frozen one would only exit once thawed.
	ts := startServer(t, "", func(c *config.Config) { c.FreezeAfter = 0 })

	t.Run("returned error", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-error")
		r := ts.invoke("fail-error", `{"action":"error"}`)
		wantFunctionError(t, r, "errorString", "something went wrong")
		if rep := parseReport(t, r.log); rep.errorType != "" {
			t.Errorf("a handled error marked the REPORT as a runtime failure: %s", r.log)
		}
		// A returned error leaves the environment healthy: reused warm.
		if rep := parseReport(t, ts.wantWorks("fail-error").log); rep.cold {
			t.Errorf("the environment was not reused after a returned error")
		}
	})

	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-panic")
		r := ts.invoke("fail-panic", `{"action":"panic"}`)
		wantFunctionError(t, r, "string", "kitchensink panicked")
		if st, _ := r.errorObj["stackTrace"].([]any); len(st) == 0 {
			t.Errorf("no stackTrace in %s", r.payload)
		}
		ts.wantWorks("fail-panic")
	})

	t.Run("exit", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-exit")
		r := ts.invoke("fail-exit", `{"action":"exit","code":3}`)
		wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error: exit status 3")
		if rep := parseReport(t, r.log); rep.errorType != "Runtime.ExitError" {
			t.Errorf("REPORT does not say Status: error / Runtime.ExitError:\n%s", r.log)
		}
		if rep := parseReport(t, ts.wantWorks("fail-exit").log); !rep.cold {
			t.Errorf("the invoke after an exit did not get a new environment")
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-timeout", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(1) })
		r := ts.invoke("fail-timeout", `{"action":"sleep","ms":3000}`)
		rep := parseReport(t, r.log)
		wantFunctionError(t, r, "Sandbox.Timedout", "RequestId: "+rep.requestID+" Error: Task timed out after 1.00 seconds")
		if rep.errorType != "Sandbox.Timedout" {
			t.Errorf("REPORT lacks Status: error:\n%s", r.log)
		}
		if rep.durationMs < 1000 || rep.durationMs > 2500 {
			t.Errorf("a 1 s timeout took %.2f ms", rep.durationMs)
		}
		if rep := parseReport(t, ts.wantWorks("fail-timeout").log); !rep.cold {
			t.Errorf("the invoke after a timeout reused the timed-out environment")
		}
		ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("fail-timeout"), Timeout: aws.Int32(5)})
		if r := ts.invoke("fail-timeout", `{"action":"sleep","ms":1200}`); r.funcErr != "" || r.payload != `{"slept":"1200"}` {
			t.Errorf("after raising the timeout to 5 s, a 1.2 s invoke: %s %s", r.funcErr, r.payload)
		}
	})

	t.Run("init failure", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-init", func(in *lambda.CreateFunctionInput) {
			in.Environment = &types.Environment{Variables: map[string]string{"KITCHENSINK_INIT": "exit"}}
		})
		for range 2 { // it keeps failing the same way
			r := ts.invoke("fail-init", `{}`)
			wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error: exit status 2")
			if !strings.Contains(r.log, "init failing on purpose") {
				t.Errorf("the log tail lacks the function's init output:\n%s", r.log)
			}
			if rep := parseReport(t, r.log); rep.errorType != "Runtime.ExitError" {
				t.Errorf("REPORT lacks Status: error:\n%s", r.log)
			}
		}
		ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("fail-init"), Environment: &types.Environment{Variables: map[string]string{}},
		})
		ts.wantWorks("fail-init")
	})

	t.Run("out of memory", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		// 128 MB: 1/14 of a CPU. The timeout is far beyond what reaching
		// the limit takes even on a loaded machine: the function must end
		// killed at its limit, never by the timeout. How fast the kill
		// follows the limit is measured in bench/oom.sh, not here.
		ts.createKitchensink("fail-oom", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(120) })
		r := ts.invoke("fail-oom", `{"action":"alloc","bytes":314572800}`)
		wantFunctionError(t, r, "Runtime.ExitError", "signal: killed")
		rep := parseReport(t, r.log)
		if rep.errorType != "Runtime.ExitError" || rep.maxMB != 128 {
			t.Errorf("REPORT of the OOM kill (want Max Memory Used at the 128 MB limit, Status: error):\n%s", r.log)
		}
		ts.wantWorks("fail-oom")
		ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("fail-oom"), MemorySize: aws.Int32(512)})
		r = ts.invoke("fail-oom", `{"action":"alloc","bytes":314572800}`)
		if r.funcErr != "" || r.payload != "300" {
			t.Errorf("with 512 MB, allocating 300 MB: %s %s", r.funcErr, r.payload)
		}
		if rep := parseReport(t, r.log); rep.maxMB < 300 || rep.maxMB > 512 || rep.memMB != 512 {
			t.Errorf("REPORT after allocating 300 MB of 512: %s", r.log)
		}
	})

	t.Run("response too large", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		// 7 MB of JSON: a whole CPU and a timeout that holds on a loaded machine.
		ts.createKitchensink("fail-big", func(in *lambda.CreateFunctionInput) {
			in.MemorySize, in.Timeout = aws.Int32(1769), aws.Int32(60)
		})
		for range 2 {
			r := ts.invoke("fail-big", `{"action":"big","bytes":7000000}`)
			wantFunctionError(t, r, "Function.ResponseSizeTooLarge", "6291556")
			// aws-lambda-go exits when its response is refused: that exit
			// must not fail the next invocation.
			ts.wantWorks("fail-big")
		}
	})

	t.Run("exit while idle", func(t *testing.T) {
		t.Parallel()
		ts := ts.as(t)
		ts.createKitchensink("fail-idle-exit")
		ts.wantWorks("fail-idle-exit")
		pids := functionProcesses(instanceOf(t, ts.dataDir), "fail-idle-exit")
		if len(pids) == 0 {
			t.Fatalf("no sandbox process of fail-idle-exit found")
		}
		if r := ts.invoke("fail-idle-exit", `{"action":"exitafter","ms":50}`); r.funcErr != "" {
			t.Fatalf("exitafter: %s", r.payload)
		}
		// Wait until the runtime is reaped, not just dead: Owl learns of
		// an exit when it reaps the process.
		eventually(t, 10*time.Second, func() error {
			for pid, comm := range pids {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
					return fmt.Errorf("the runtime (%d %s) is not reaped yet", pid, comm)
				}
			}
			return nil
		})
		// The exit belonged to no invocation: the next one just starts cold.
		if rep := parseReport(t, ts.wantWorks("fail-idle-exit").log); !rep.cold {
			t.Errorf("the invoke after the runtime exited was not a cold start")
		}
	})
}

// functionProcesses lists the sandbox processes of function name (its
// sandbox cgroups are named <lowercase name>-<seq>).
func functionProcesses(instance, name string) map[int]string {
	out := map[int]string{}
	for pid, p := range sandboxProcessCgroups(instance) {
		// A sandbox's cgroup is named after it (<function>-...), except on
		// cgroup v2 when it was made from a spare init (@spare-...): then
		// the runtime's environment names the function.
		if strings.HasPrefix(p.cgroup, strings.ToLower(name)+"-") || functionOfProcess(pid) == name {
			out[pid] = p.comm
		}
	}
	return out
}

// functionOfProcess is AWS_LAMBDA_FUNCTION_NAME in pid's environment.
func functionOfProcess(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, "AWS_LAMBDA_FUNCTION_NAME="); ok {
			return v
		}
	}
	return ""
}
