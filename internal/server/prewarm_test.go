package server_test

// Pre-warmed environments (issue 5): the first invocation of a Python or
// Node.js function is served by an interpreter started ahead of time and
// specialised for it, which must be indistinguishable from a fresh start
// to the function and never shared between functions.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/worker"

	"github.com/owl-project/owl/internal/testkit"
)

const prewarmPython = `import json, os
def handler(event, context):
    st = os.statvfs("/tmp")
    seen = sorted(os.listdir("/tmp"))
    with open("/tmp/" + context.function_name, "w") as f:
        f.write("x")
    return {"env": dict(os.environ), "cwd": os.getcwd(), "task": sorted(os.listdir("/var/task")),
            "tmp_mb": st.f_bavail * st.f_frsize // (1 << 20), "tmp": seen,
            "cgroup": open("/proc/self/cgroup").read(), "memory": context.memory_limit_in_mb,
            "net": open("/proc/net/dev").read()}
`

const prewarmNode = `import fs from 'node:fs';
export const handler = async (event, context) => {
  const st = fs.statfsSync('/tmp');
  const seen = fs.readdirSync('/tmp').sort();
  fs.writeFileSync('/tmp/' + context.functionName, 'x');
  return { env: { ...process.env }, cwd: process.cwd(), task: fs.readdirSync('/var/task').sort(),
    tmp_mb: Math.floor(st.bavail * st.bsize / 1048576), tmp: seen,
    cgroup: fs.readFileSync('/proc/self/cgroup', 'utf8'), memory: context.memoryLimitInMB,
    net: fs.readFileSync('/proc/net/dev', 'utf8') };
};
`

type prewarmOut struct {
	Env    map[string]string
	Cwd    string
	Task   []string
	TmpMB  int `json:"tmp_mb"`
	Tmp    []string
	Cgroup string
	Net    string
}

// cgroupName is the sandbox cgroup a function reported (/proc/self/cgroup).
func (o prewarmOut) cgroupName() string {
	for line := range strings.Lines(o.Cgroup) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 && (strings.Contains(f[1], "memory") || f[0] == "0") {
			return filepath.Base(f[2])
		}
	}
	return ""
}

// memoryLimit reads a sandbox cgroup's memory limit on the host.
func memoryLimit(t *testing.T, inst, name string) int64 {
	t.Helper()
	for _, d := range instanceCgroups(t, inst) {
		if filepath.Base(d) != name {
			continue
		}
		for _, f := range []string{"memory.limit_in_bytes", "memory.max"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	t.Fatalf("no memory limit found for sandbox cgroup %s", name)
	return 0
}

type prewarmRuntime struct{ id, handler, file, body string }

func prewarmRuntimes(t *testing.T) []prewarmRuntime {
	var out []prewarmRuntime
	for _, id := range worker.PrewarmRuntimes() {
		switch {
		case strings.HasPrefix(id, "python") && !slices.ContainsFunc(out, func(r prewarmRuntime) bool { return strings.HasPrefix(r.id, "python") }):
			out = append(out, prewarmRuntime{id, "app.handler", "app.py", prewarmPython})
		case strings.HasPrefix(id, "nodejs"):
			out = append(out, prewarmRuntime{id, "index.handler", "index.mjs", prewarmNode})
		}
	}
	if len(out) == 0 {
		testkit.Skip(t, "no Python or Node.js interpreter on this machine")
	}
	return out
}

func (ts *testServer) createPrewarmFunction(name string, rt prewarmRuntime, memory, tmp int32, env map[string]string) {
	ts.t.Helper()
	_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName:     aws.String(name),
		Runtime:          types.Runtime(rt.id),
		Handler:          aws.String(rt.handler),
		Role:             aws.String("arn:aws:iam::000000000000:role/owl"),
		Code:             &types.FunctionCode{ZipFile: makeZip(ts.t, zipEntry{name: rt.file, body: rt.body})},
		MemorySize:       aws.Int32(memory),
		EphemeralStorage: &types.EphemeralStorage{Size: aws.Int32(tmp)},
		Environment:      &types.Environment{Variables: env},
	})
	if err != nil {
		ts.t.Fatalf("CreateFunction %s: %v", name, err)
	}
}

func (ts *testServer) invokePrewarm(name string) prewarmOut {
	ts.t.Helper()
	r := ts.invoke(name, `{}`)
	if r.funcErr != "" {
		ts.t.Fatalf("invoke %s: %s %s\n%s", name, r.funcErr, r.payload, r.log)
	}
	var out prewarmOut
	if err := json.Unmarshal([]byte(r.payload), &out); err != nil {
		ts.t.Fatalf("payload %s: %v", r.payload, err)
	}
	return out
}

// waitPrewarmed waits until n pre-warmed environments are ready.
func waitPrewarmed(t *testing.T, w *worker.Worker, n int) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if s := w.Stats(); s.PrewarmReady < n {
			return fmt.Errorf("%d pre-warmed environments ready, want %d", s.PrewarmReady, n)
		}
		return nil
	})
}

func TestPrewarmedEnvironments(t *testing.T) {
	t.Parallel()
	rts := prewarmRuntimes(t)
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 1 })
	inst := instanceOf(t, ts.dataDir)
	w := ts.Worker()
	total := len(worker.PrewarmRuntimes())
	for _, rt := range rts {
		t.Run(rt.id, func(t *testing.T) {
			ts := ts.as(t)
			waitPrewarmed(t, w, total)
			before := w.Stats().Specialized

			a := "pw-a-" + strings.ReplaceAll(rt.id, ".", "-")
			ts.createPrewarmFunction(a, rt, 256, 600, map[string]string{"FOO": "a"})
			outA := ts.invokePrewarm(a)
			if got := w.Stats().Specialized; got != before+1 {
				t.Fatalf("Specialized = %d after the first invocation of %s, want %d: not served by a pre-warmed environment", got, a, before+1)
			}
			cgA := outA.cgroupName()
			if !strings.HasPrefix(cgA, "prewarm-") {
				t.Errorf("function ran in cgroup %q, not a pre-warmed sandbox's", cgA)
			}
			wantEnv := map[string]string{"FOO": "a", "_HANDLER": rt.handler, "AWS_LAMBDA_FUNCTION_NAME": a,
				"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "LAMBDA_TASK_ROOT": "/var/task"}
			for k, v := range wantEnv {
				if outA.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, outA.Env[k], v)
				}
			}
			if _, ok := outA.Env["_OWL_PREWARM"]; ok {
				t.Errorf("the function sees the pre-warm marker: %v", outA.Env)
			}
			if outA.Cwd != "/var/task" || !slices.Contains(outA.Task, rt.file) {
				t.Errorf("cwd %q, /var/task %v; want /var/task holding %s", outA.Cwd, outA.Task, rt.file)
			}
			if outA.TmpMB < 600 || outA.TmpMB > 604 || len(outA.Tmp) != 0 {
				t.Errorf("/tmp: %d MB free holding %v, want 600 MB and empty", outA.TmpMB, outA.Tmp)
			}
			// Network egress (the default): eth0 was added when specialised.
			if !strings.Contains(outA.Net, "eth0") {
				t.Errorf("no eth0 in a specialised environment of a function with egress:\n%s", outA.Net)
			}
			if got := memoryLimit(t, inst, cgA); got != 256<<20 {
				t.Errorf("memory limit of %s: %d, want %d", cgA, got, 256<<20)
			}
			// Warm reuse: the same environment.
			if again := ts.invokePrewarm(a); again.cgroupName() != cgA || !slices.Contains(again.Tmp, a) {
				t.Errorf("second invocation of %s: cgroup %s, /tmp %v; want the same environment", a, again.cgroupName(), again.Tmp)
			}

			// Replenished, then a second function gets a fresh spare.
			waitPrewarmed(t, w, total)
			b := "pw-b-" + strings.ReplaceAll(rt.id, ".", "-")
			ts.createPrewarmFunction(b, rt, 128, 512, map[string]string{"FOO": "b"})
			outB := ts.invokePrewarm(b)
			if got := w.Stats().Specialized; got != before+2 {
				t.Fatalf("Specialized = %d after %s, want %d", got, b, before+2)
			}
			if cgB := outB.cgroupName(); cgB == cgA || !strings.HasPrefix(cgB, "prewarm-") {
				t.Errorf("second function ran in %q (first: %q): want another pre-warmed sandbox", cgB, cgA)
			}
			if len(outB.Tmp) != 0 || outB.Env["FOO"] != "b" || outB.TmpMB < 512 || outB.TmpMB > 516 {
				t.Errorf("second function: /tmp %v (%d MB), FOO=%q: sees the first's state or wrong settings", outB.Tmp, outB.TmpMB, outB.Env["FOO"])
			}
			if got := memoryLimit(t, inst, outB.cgroupName()); got != 128<<20 {
				t.Errorf("memory limit of %s: %d, want %d", outB.cgroupName(), got, 128<<20)
			}
			waitPrewarmed(t, w, total)
		})
	}
	// A function setting a start-up variable of its interpreter is started
	// fresh: a pre-started interpreter could not honour it.
	rt := rts[0]
	before := w.Stats().Specialized
	ts.createPrewarmFunction("pw-startup-env", rt, 128, 512, map[string]string{"PYTHONHASHSEED": "1", "NODE_OPTIONS": "--no-warnings"})
	if out := ts.invokePrewarm("pw-startup-env"); strings.HasPrefix(out.cgroupName(), "prewarm-") || w.Stats().Specialized != before {
		t.Errorf("a function with interpreter start-up variables ran in %s (specialized %d → %d)", out.cgroupName(), before, w.Stats().Specialized)
	}
}

func TestPrewarmDisabled(t *testing.T) {
	t.Parallel()
	rts := prewarmRuntimes(t)
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 0 })
	inst := instanceOf(t, ts.dataDir)
	rt := rts[0]
	ts.createPrewarmFunction("pw-off", rt, 128, 512, nil)
	out := ts.invokePrewarm("pw-off")
	if s := ts.Worker().Stats(); s.Specialized != 0 || s.PrewarmReady != 0 {
		t.Errorf("OWL_PREWARM=0: stats %+v", s)
	}
	if strings.HasPrefix(out.cgroupName(), "prewarm-") {
		t.Errorf("ran in %s with pre-warming off", out.cgroupName())
	}
	for _, d := range instanceCgroups(t, inst) {
		if strings.HasPrefix(filepath.Base(d), "prewarm-") {
			t.Errorf("pre-warmed sandbox cgroup %s with pre-warming off", d)
		}
	}
	if m := mountsUnder(t, filepath.Join(ts.dataDir, "sandboxes", "slots")); len(m) > 0 {
		t.Errorf("slot mounts with pre-warming off: %v", m)
	}
}

// TestPrewarmedOutOfMemory: a pre-warmed environment specialised to a
// function's memory enforces that memory like a fresh one — exhausting it
// ends in "signal: killed" at the limit — and the next invocation works.
func TestPrewarmedOutOfMemory(t *testing.T) {
	t.Parallel()
	rts := prewarmRuntimes(t)
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 1 })
	w := ts.Worker()
	waitPrewarmed(t, w, len(worker.PrewarmRuntimes()))
	rt := rts[0]
	body := `import os
def handler(event, context):
    if event.get("mb"):
        chunks = [bytearray(os.urandom(1)) * (1 << 20) for _ in range(event["mb"])]
        return len(chunks)
    return "ok"
`
	file := "app.py"
	if strings.HasPrefix(rt.id, "nodejs") {
		body = `export const handler = async (event) => {
  if (event.mb) { const chunks = []; for (let i = 0; i < event.mb; i++) chunks.push(Buffer.alloc(1 << 20, 1)); return chunks.length; }
  return "ok";
};
`
		file = "index.mjs"
	}
	before := w.Stats().Specialized
	_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String("pw-oom"),
		Runtime:      types.Runtime(rt.id),
		Handler:      aws.String(rt.handler),
		Role:         aws.String("arn:aws:iam::000000000000:role/owl"),
		Code:         &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: file, body: body})},
		MemorySize:   aws.Int32(128),
		Timeout:      aws.Int32(120), // far beyond reaching the limit: it must end killed, not timed out
	})
	if err != nil {
		t.Fatal(err)
	}
	r := ts.invoke("pw-oom", `{"mb":400}`)
	if w.Stats().Specialized != before+1 {
		t.Fatalf("not served by a pre-warmed environment (specialized %d → %d)", before, w.Stats().Specialized)
	}
	wantFunctionError(t, r, "Runtime.ExitError", "Runtime exited with error: signal: killed")
	if rep := parseReport(t, r.log); rep.maxMB != 128 || rep.errorType != "Runtime.ExitError" {
		t.Errorf("REPORT of the OOM kill (want Max Memory Used 128, Status: error):\n%s", r.log)
	}
	if r := ts.invoke("pw-oom", `{}`); r.funcErr != "" || r.payload != `"ok"` {
		t.Errorf("after the OOM kill: %s %s", r.funcErr, r.payload)
	}
}
