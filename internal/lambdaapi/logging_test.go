package lambdaapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// LoggingConfig is stored, reported by every read and snapshotted by
// versions; bad values and levels without JSON get Lambda's errors.
func TestLoggingConfig(t *testing.T) {
	h := newHarness(t)
	created := h.create("fn")
	if got := *created.LoggingConfig; got != (lambdawire.LoggingConfig{LogFormat: "Text", LogGroup: "/aws/lambda/fn"}) {
		t.Fatalf("default LoggingConfig = %+v", got)
	}
	update := func(lc map[string]any) *response {
		return h.do("PUT", fns+"/fn/configuration", map[string]any{"LoggingConfig": lc})
	}
	// Each answer is decoded into a new value: json.Unmarshal would keep
	// the fields an earlier answer set and this one leaves out.
	var fc, got lambdawire.FunctionConfiguration
	update(map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "WARN"}).ok(t, http.StatusOK, reset(&fc))
	want := lambdawire.LoggingConfig{LogFormat: "JSON", ApplicationLogLevel: "WARN", SystemLogLevel: "INFO", LogGroup: "/aws/lambda/fn"}
	if *fc.LoggingConfig != want {
		t.Fatalf("after JSON+WARN: %+v, want %+v", *fc.LoggingConfig, want)
	}
	var v1 lambdawire.FunctionConfiguration
	h.do("POST", fns+"/fn/versions", map[string]any{}).ok(t, http.StatusCreated, &v1)

	// Levels alone change only themselves.
	update(map[string]any{"SystemLogLevel": "WARN"}).ok(t, http.StatusOK, reset(&fc))
	want.SystemLogLevel = "WARN"
	if *fc.LoggingConfig != want {
		t.Fatalf("after SystemLogLevel WARN: %+v, want %+v", *fc.LoggingConfig, want)
	}
	h.do("GET", fns+"/fn/configuration", nil).ok(t, http.StatusOK, reset(&got))
	if *got.LoggingConfig != want {
		t.Errorf("GetFunctionConfiguration: %+v, want %+v", *got.LoggingConfig, want)
	}
	var list struct {
		Functions []lambdawire.FunctionConfiguration
	}
	h.do("GET", fns, nil).ok(t, http.StatusOK, &list)
	if len(list.Functions) != 1 || *list.Functions[0].LoggingConfig != want {
		t.Errorf("ListFunctions: %s", mustJSON(t, list))
	}
	// Version 1 keeps what it was published with.
	h.do("GET", fns+"/fn/configuration?Qualifier=1", nil).ok(t, http.StatusOK, reset(&got))
	if got.LoggingConfig.SystemLogLevel != "INFO" || got.LoggingConfig.ApplicationLogLevel != "WARN" {
		t.Errorf("version 1: %+v", *got.LoggingConfig)
	}

	for _, c := range []struct {
		lc       map[string]any
		code     string
		inMsg    string
		onCreate bool
	}{
		{map[string]any{"LogFormat": "XML"}, lambdaerr.Validation,
			"Value 'XML' at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [JSON, Text]", true},
		{map[string]any{"LogFormat": "JSON", "ApplicationLogLevel": "VERBOSE"}, lambdaerr.Validation,
			"Value 'VERBOSE' at 'loggingConfig.applicationLogLevel' failed to satisfy constraint: Member must satisfy enum value set: [TRACE, DEBUG, INFO, WARN, ERROR, FATAL]", false},
		{map[string]any{"LogFormat": "JSON", "SystemLogLevel": "ERROR"}, lambdaerr.Validation,
			"Value 'ERROR' at 'loggingConfig.systemLogLevel' failed to satisfy constraint: Member must satisfy enum value set: [DEBUG, INFO, WARN]", false},
		{map[string]any{"LogFormat": "Text", "ApplicationLogLevel": "DEBUG"}, lambdaerr.InvalidParameterValue,
			`LogLevel is not supported when LogFormat is set to "Text".`, true},
		{map[string]any{"LogFormat": "Text", "SystemLogLevel": "WARN"}, lambdaerr.InvalidParameterValue,
			`LogLevel is not supported when LogFormat is set to "Text".`, false},
		{map[string]any{"LogGroup": "bad group!"}, lambdaerr.Validation, "at 'loggingConfig.logGroup'", false},
	} {
		r := update(c.lc)
		r.fails(t, c.code)
		if !strings.Contains(message(t, r), c.inMsg) {
			t.Errorf("%v: %s, want it to say %q", c.lc, r.body, c.inMsg)
		}
		if c.onCreate {
			r := h.do("POST", fns, map[string]any{
				"FunctionName": "other", "Runtime": "provided.al2023", "Handler": "bootstrap",
				"Code": map[string]any{"ZipFile": zipOf(t, "v1")}, "LoggingConfig": c.lc,
			})
			r.fails(t, c.code)
			if !strings.Contains(message(t, r), c.inMsg) {
				t.Errorf("create %v: %s, want it to say %q", c.lc, r.body, c.inMsg)
			}
		}
	}
	// A failed update changed nothing.
	h.do("GET", fns+"/fn/configuration", nil).ok(t, http.StatusOK, reset(&got))
	if *got.LoggingConfig != want {
		t.Errorf("after refused updates: %+v, want %+v", *got.LoggingConfig, want)
	}

	// Back to Text: the levels go; a log group stays.
	update(map[string]any{"LogFormat": "Text", "LogGroup": "/owl/fn"}).ok(t, http.StatusOK, reset(&fc))
	if *fc.LoggingConfig != (lambdawire.LoggingConfig{LogFormat: "Text", LogGroup: "/owl/fn"}) {
		t.Errorf("back to Text: %+v", *fc.LoggingConfig)
	}
	// Levels on a Text function, without a format, are refused too.
	update(map[string]any{"ApplicationLogLevel": "ERROR"}).fails(t, lambdaerr.InvalidParameterValue)

	// CreateFunction takes it.
	h.do("POST", fns, map[string]any{
		"FunctionName": "json", "Runtime": "provided.al2023", "Handler": "bootstrap",
		"Code": map[string]any{"ZipFile": zipOf(t, "v1")}, "LoggingConfig": map[string]any{"LogFormat": "JSON", "SystemLogLevel": "DEBUG"},
	}).ok(t, http.StatusCreated, reset(&fc))
	if *fc.LoggingConfig != (lambdawire.LoggingConfig{LogFormat: "JSON", ApplicationLogLevel: "INFO", SystemLogLevel: "DEBUG", LogGroup: "/aws/lambda/json"}) {
		t.Errorf("created JSON: %+v", *fc.LoggingConfig)
	}
}

func reset(fc *lambdawire.FunctionConfiguration) *lambdawire.FunctionConfiguration {
	*fc = lambdawire.FunctionConfiguration{}
	return fc
}

// message is the message of an error answer.
func message(t *testing.T, r *response) string {
	t.Helper()
	var e struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	return e.Message
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
