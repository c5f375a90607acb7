package worker

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimes"
)

// A JSON LoggingConfig turns START and REPORT into platform events (no
// END), SystemLogLevel WARN drops them, and the runtime is told the format
// and the application's level whatever the function's own variables say.
func TestJSONLogFormat(t *testing.T) {
	w, _ := newTestWorker(t, Config{})
	fn := testFunction("jsonlogs", map[string]string{"AWS_LAMBDA_LOG_LEVEL": "DEBUG", "KEEP": "1"})
	fn.Logging = registry.Logging{Format: registry.LogJSON, AppLevel: "WARN", SystemLevel: "INFO"}

	res := invoke(t, w, fn, `{"n":1}`)
	lines := strings.Split(strings.TrimSuffix(res.Log, "\n"), "\n")
	var start, report struct {
		Type   string
		Record map[string]any
	}
	if len(lines) < 2 || json.Unmarshal([]byte(lines[0]), &start) != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &report) != nil {
		t.Fatalf("log:\n%s", res.Log)
	}
	if start.Type != "platform.start" || start.Record["requestId"] != `req-{"n":1}` || start.Record["version"] != "$LATEST" {
		t.Errorf("first line %s", lines[0])
	}
	metrics, _ := report.Record["metrics"].(map[string]any)
	if report.Type != "platform.report" || report.Record["status"] != "success" || metrics["memorySizeMB"] != 128.0 || metrics["initDurationMs"] == nil {
		t.Errorf("last line %s", lines[len(lines)-1])
	}
	if strings.Contains(res.Log, "END RequestId") || strings.Contains(res.Log, "REPORT RequestId") {
		t.Errorf("text platform lines in a JSON log:\n%s", res.Log)
	}

	fn.Logging.SystemLevel = "WARN"
	res = invoke(t, w, fn, "again")
	if strings.Contains(res.Log, "platform.") {
		t.Errorf("SystemLogLevel WARN kept INFO events:\n%s", res.Log)
	}

	rt, _ := runtimes.Lookup(fn.Runtime)
	env := w.environ(fn, rt, false)
	for _, kv := range []string{"AWS_LAMBDA_LOG_FORMAT=JSON", "AWS_LAMBDA_LOG_LEVEL=WARN", "KEEP=1", "AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/jsonlogs"} {
		if !slices.Contains(env, kv) {
			t.Errorf("environment lacks %s: %q", kv, env)
		}
	}
	if slices.Contains(env, "AWS_LAMBDA_LOG_LEVEL=DEBUG") {
		t.Errorf("the function's AWS_LAMBDA_LOG_LEVEL stayed beside the LoggingConfig's: %q", env)
	}
	fn.Logging = registry.Logging{Group: "/custom/group"}
	env = w.environ(fn, rt, false)
	if !slices.Contains(env, "AWS_LAMBDA_LOG_LEVEL=DEBUG") || slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "AWS_LAMBDA_LOG_FORMAT=") }) ||
		!slices.Contains(env, "AWS_LAMBDA_LOG_GROUP_NAME=/custom/group") {
		t.Errorf("Text: the function's own level applies, no format is set, the log group is the configured one: %q", env)
	}
}
