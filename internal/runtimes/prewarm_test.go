package runtimes_test

// Pre-warmed start of Owl's bootstraps (_OWL_PREWARM=1): the interpreter
// starts with a generic environment, asks the Runtime API's specialize
// endpoint for its function, and only then loads the handler, with the
// function's environment in place of its own.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/runtimeapi"

	"github.com/owl-project/owl/internal/testkit"
)

func TestPrewarmedBootstraps(t *testing.T) {
	for _, tc := range []struct {
		name, interp, bootstrap, file, handler, code string
	}{
		{"python", pythonRuntime.interp, "python/bootstrap.py", "app.py", "app.handler",
			"import os\ndef handler(event, context):\n    return {'env': dict(os.environ), 'cwd': os.getcwd()}\n"},
		{"node", "/usr/bin/node", "node/bootstrap.mjs", "index.mjs", "index.handler",
			"export const handler = async () => ({ env: { ...process.env }, cwd: process.cwd() });\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.interp); err != nil {
				testkit.Skipf(t, "no %s", tc.interp)
			}
			bootstrap, err := filepath.Abs(tc.bootstrap)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			if err := os.WriteFile(filepath.Join(root, tc.file), []byte(tc.code), 0o644); err != nil {
				t.Fatal(err)
			}
			ln := testkit.Listen(t)
			api := ln.Addr().String()
			var out bytes.Buffer
			cmd := exec.Command(tc.interp, bootstrap)
			cmd.Env = []string{"_OWL_PREWARM=1", "AWS_LAMBDA_RUNTIME_API=" + api, "PATH=/usr/bin:/bin", "GENERIC=1"}
			cmd.Dir = t.TempDir()
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				if t.Failed() {
					t.Logf("runtime output:\n%s", out.String())
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := runtimeapi.AwaitSpecialize(ctx, ln)
			if err != nil {
				t.Fatalf("the pre-started runtime did not ask for its function: %v", err)
			}
			err = req.Answer(runtimeapi.Specialization{Env: []string{
				"AWS_LAMBDA_RUNTIME_API=" + api, "_HANDLER=" + tc.handler, "LAMBDA_TASK_ROOT=" + root,
				"AWS_LAMBDA_FUNCTION_NAME=pw", "GREETING=hi", "PATH=/usr/bin:/bin",
			}})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := runtimeapi.New(runtimeapi.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			serveDone := make(chan error, 1)
			go func() { serveDone <- srv.Serve(ln) }()
			defer func() { srv.Close(); <-serveDone }()
			if err := srv.WaitReady(ctx); err != nil {
				t.Fatalf("WaitReady: %v", err)
			}
			res, err := srv.Invoke(ctx, runtimeapi.Invocation{RequestID: "3f1e9c2a-0000-4000-8000-000000000001",
				Deadline: time.Now().Add(5 * time.Second), FunctionARN: "arn:aws:lambda:eu-west-1:123456789012:function:pw",
				Payload: []byte(`{}`)})
			if err != nil || res.IsError {
				t.Fatalf("Invoke: %v %s", err, res.Payload)
			}
			var got struct {
				Env map[string]string
				Cwd string
			}
			if err := json.Unmarshal(res.Payload, &got); err != nil {
				t.Fatalf("payload %s: %v", res.Payload, err)
			}
			if got.Env["GREETING"] != "hi" || got.Env["_HANDLER"] != tc.handler || got.Env["_OWL_PREWARM"] != "" || got.Env["GENERIC"] != "" {
				t.Errorf("the handler's environment is not exactly the function's: %v", got.Env)
			}
			if real, _ := filepath.EvalSymlinks(root); got.Cwd != root && got.Cwd != real {
				t.Errorf("cwd %q, want the task root %q", got.Cwd, root)
			}
		})
	}
}
