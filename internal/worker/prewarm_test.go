package worker

import (
	"slices"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimes"
)

func TestPrewarmEligible(t *testing.T) {
	py := runtimes.Runtime{ID: "python3.11", Argv: []string{"/usr/bin/python3.11"}}
	provided := runtimes.Runtime{ID: "provided", Entrypoints: []string{"/var/task/bootstrap"}}
	for _, tc := range []struct {
		env  map[string]string
		rt   runtimes.Runtime
		want bool
	}{
		{nil, py, true},
		{map[string]string{"GREETING": "hi", "AWS_X": "1"}, py, true},
		{nil, provided, true},
		// A custom runtime's bootstrap is exec'd with the function's
		// environment: start-up variables are honoured.
		{map[string]string{"LD_PRELOAD": "/x.so", "TZ": "UTC"}, provided, true},
		{map[string]string{"PYTHONPATH": "/x"}, py, false},
		{map[string]string{"NODE_OPTIONS": "--x"}, py, false},
		{map[string]string{"LD_PRELOAD": "/x.so"}, py, false},
		{map[string]string{"_OWL_PREWARM": "0"}, py, false},
		{map[string]string{"TZ": "Europe/Paris"}, py, false},
	} {
		if got := prewarmEligible(registry.Function{Environment: tc.env}, tc.rt); got != tc.want {
			t.Errorf("eligible(%v, %s) = %v, want %v", tc.env, tc.rt.ID, got, tc.want)
		}
	}
}

// A spare starts with what every function of its runtime gets, and
// nothing of any function.
func TestPrewarmEnviron(t *testing.T) {
	w := &Worker{cfg: Config{Region: "eu-west-1"}}
	rt := runtimes.Runtime{ID: "nodejs20.x", Env: []string{"NODE_PATH=/opt/nodejs/node_modules"}, ExecutionEnv: "AWS_Lambda_nodejs20.x"}
	env := w.prewarmEnviron(rt)
	for _, want := range []string{"_OWL_PREWARM=1", "NODE_PATH=/opt/nodejs/node_modules", "AWS_LAMBDA_RUNTIME_API=" + runtimeAPIAddr,
		"LAMBDA_TASK_ROOT=/var/task", "AWS_EXECUTION_ENV=AWS_Lambda_nodejs20.x"} {
		if !slices.Contains(env, want) {
			t.Errorf("spare environment lacks %s: %v", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "_HANDLER=") || strings.HasPrefix(kv, "AWS_LAMBDA_FUNCTION_") || strings.HasPrefix(kv, "AWS_REGION=") {
			t.Errorf("spare environment holds a function's variable: %s", kv)
		}
	}
}
