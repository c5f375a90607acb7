package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/testkit"
)

// createKitchensink creates the test function through the SDK.
func (ts *testServer) createKitchensink(name string, mutate ...func(*lambda.CreateFunctionInput)) *lambda.CreateFunctionOutput {
	ts.t.Helper()
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      types.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		Role:         aws.String("arn:aws:iam::000000000000:role/owl"),
		Code:         &types.FunctionCode{ZipFile: kitchenZip},
	}
	for _, m := range mutate {
		m(in)
	}
	out, err := ts.sdk().CreateFunction(context.Background(), in)
	if err != nil {
		ts.t.Fatalf("CreateFunction %s: %v", name, err)
	}
	return out
}

type invokeResult struct {
	payload  string
	funcErr  string
	log      string
	version  string
	errorObj map[string]any
}

func (ts *testServer) invoke(name, payload string, mutate ...func(*lambda.InvokeInput)) invokeResult {
	ts.t.Helper()
	in := &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail}
	for _, m := range mutate {
		m(in)
	}
	out, err := ts.sdk().Invoke(context.Background(), in)
	if err != nil {
		ts.t.Fatalf("Invoke %s %s: %v", name, payload, err)
	}
	r := invokeResult{payload: string(out.Payload), version: aws.ToString(out.ExecutedVersion)}
	if out.FunctionError != nil {
		r.funcErr = *out.FunctionError
		_ = json.Unmarshal(out.Payload, &r.errorObj)
	}
	if out.LogResult != nil {
		b, err := base64.StdEncoding.DecodeString(*out.LogResult)
		if err != nil {
			ts.t.Fatalf("LogResult is not base64: %v", err)
		}
		r.log = string(b)
	}
	return r
}

func TestInvokeThroughSDK(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	created := ts.createKitchensink("hello")
	if got := aws.ToString(created.FunctionArn); got != "arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("FunctionArn = %q", got)
	}
	if created.State != types.StateActive || aws.ToInt32(created.MemorySize) != 128 || aws.ToInt32(created.Timeout) != 3 {
		t.Errorf("create answered State=%s Memory=%d Timeout=%d", created.State, aws.ToInt32(created.MemorySize), aws.ToInt32(created.Timeout))
	}

	cold := ts.invoke("hello", `{"name":"owl","print":"a line from the function"}`)
	if cold.funcErr != "" || cold.payload != `{"message":"hello owl"}` {
		t.Fatalf("cold invoke = %+v", cold)
	}
	if cold.version != "$LATEST" {
		t.Errorf("ExecutedVersion = %q", cold.version)
	}
	testkit.Contains(t, "cold log", cold.log, "START RequestId: ", "Version: $LATEST", "a line from the function", "END RequestId: ", "REPORT RequestId: ", "\tBilled Duration: ", "\tMax Memory Used: ", "\tInit Duration: ")
	warm := ts.invoke("hello", `{"action":"context"}`)
	if strings.Contains(warm.log, "Init Duration") {
		t.Errorf("warm invoke reported an init duration:\n%s", warm.log)
	}
	var ctxOut map[string]any
	if err := json.Unmarshal([]byte(warm.payload), &ctxOut); err != nil {
		t.Fatalf("context payload %q: %v", warm.payload, err)
	}
	if ctxOut["coldStarts"] != float64(1) {
		t.Errorf("the warm invoke did not reuse the environment: %v", ctxOut)
	}
	if ctxOut["arn"] != "arn:aws:lambda:us-east-1:000000000000:function:hello" {
		t.Errorf("invoked function ARN = %v", ctxOut["arn"])
	}
	if st := ts.Worker().Stats(); st.Environments != 1 {
		t.Errorf("environments = %d, want 1", st.Environments)
	}
}

// startRequestID is the request id of the START line of a log tail.
func startRequestID(log string) string {
	for line := range strings.Lines(log) {
		if rest, ok := strings.CutPrefix(line, "START RequestId: "); ok {
			id, _, _ := strings.Cut(rest, " ")
			return id
		}
	}
	return ""
}

func TestInvokeForms(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	// Megabytes of JSON in and out: a whole CPU (1769 MB) and a timeout
	// that holds on a loaded machine; 128 MB would get 1/14 of a CPU.
	ts.createKitchensink("forms", func(in *lambda.CreateFunctionInput) {
		in.MemorySize, in.Timeout = aws.Int32(1769), aws.Int32(60)
	})
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:forms"

	for _, path := range []string{
		"forms",
		"forms:$LATEST",
		arn,
		arn + ":$LATEST",
		"000000000000:function:forms",
		"000000000000:function:forms:$LATEST",
		"forms/invocations?Qualifier=" + url.QueryEscape("$LATEST"),
	} {
		t.Run(path, func(t *testing.T) {
			p := url.PathEscape(path) + "/invocations"
			if strings.Contains(path, "?") {
				p = path
			}
			resp, body := ts.as(t).rawInvoke(p, `{"action":"context"}`, map[string]string{"X-Amz-Log-Type": "Tail"})
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
				t.Fatalf("invoke %s: %d %s", path, resp.StatusCode, body)
			}
			if v := resp.Header.Get("X-Amz-Executed-Version"); v != "$LATEST" {
				t.Errorf("X-Amz-Executed-Version = %q", v)
			}
			logTail, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Amz-Log-Result"))
			if err != nil {
				t.Fatalf("X-Amz-Log-Result: %v", err)
			}
			var out struct{ RequestID, Arn string }
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			id := resp.Header.Get("x-amzn-RequestId")
			if !uuidRe.MatchString(id) || startRequestID(string(logTail)) != id || out.RequestID != id {
				t.Errorf("x-amzn-RequestId %q, START line's %q, the function's %q: want one UUID", id, startRequestID(string(logTail)), out.RequestID)
			}
			if !strings.Contains(string(logTail), "REPORT RequestId: "+id+"\t") {
				t.Errorf("log tail has no REPORT line for %s:\n%s", id, logTail)
			}
			if out.Arn != arn && out.Arn != arn+":$LATEST" {
				t.Errorf("the function saw invoked ARN %q", out.Arn)
			}
		})
	}

	t.Run("SDK", func(t *testing.T) {
		ts := ts.as(t)
		for _, in := range []*lambda.InvokeInput{
			{FunctionName: aws.String(arn)},
			{FunctionName: aws.String("000000000000:function:forms")},
			{FunctionName: aws.String("forms"), Qualifier: aws.String("$LATEST")},
			{FunctionName: aws.String(arn), Qualifier: aws.String("$LATEST")},
		} {
			in.Payload = []byte(`{"name":"sdk"}`)
			out, err := ts.sdk().Invoke(context.Background(), in)
			if err != nil {
				t.Errorf("Invoke %s (qualifier %q): %v", aws.ToString(in.FunctionName), aws.ToString(in.Qualifier), err)
				continue
			}
			id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
			if string(out.Payload) != `{"message":"hello sdk"}` || out.StatusCode != 200 || aws.ToString(out.ExecutedVersion) != "$LATEST" || !uuidRe.MatchString(id) {
				t.Errorf("Invoke %s: %d %s version %q request id %q", aws.ToString(in.FunctionName), out.StatusCode, out.Payload, aws.ToString(out.ExecutedVersion), id)
			}
		}
	})

	t.Run("ClientContext", func(t *testing.T) {
		cc := base64.StdEncoding.EncodeToString([]byte(`{"client":{"app_title":"owl-test"},"custom":{"tenant":"t-42","n":"7"},"env":{"platform":"linux"}}`))
		r := ts.as(t).invoke("forms", `{"action":"context"}`, func(in *lambda.InvokeInput) { in.ClientContext = aws.String(cc) })
		var out struct{ ClientContext map[string]string }
		if err := json.Unmarshal([]byte(r.payload), &out); err != nil || r.funcErr != "" {
			t.Fatalf("context action: %s: %v", r.payload, err)
		}
		if out.ClientContext["tenant"] != "t-42" || out.ClientContext["n"] != "7" || len(out.ClientContext) != 2 {
			t.Errorf("the function saw ClientContext.Custom %v", out.ClientContext)
		}
	})

	t.Run("LogTail", func(t *testing.T) {
		// X-Amz-Log-Result carries the last 4 KB of the log: the end of a
		// long line, then END and REPORT.
		line := strings.Repeat("0123456789", 1000)
		r := ts.as(t).invoke("forms", `{"print":"`+line+`"}`)
		if len(r.log) != 4096 || !strings.Contains(r.log, "789\nEND RequestId: ") || !strings.HasSuffix(r.log, "\n") {
			t.Errorf("log tail of %d bytes:\n%s", len(r.log), r.log)
		}
		parseReport(t, r.log)
	})

	t.Run("ResponseTooLarge", func(t *testing.T) {
		ts := ts.as(t)
		r := ts.invoke("forms", `{"action":"big","bytes":6400000}`)
		if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Function.ResponseSizeTooLarge" {
			t.Errorf("a 6.4 MB response: FunctionError %q, body %.300s", r.funcErr, r.payload)
		}
		if msg, _ := r.errorObj["errorMessage"].(string); !strings.Contains(msg, "6291556") {
			t.Errorf("errorMessage %q does not name the limit", msg)
		}
		if ok := ts.invoke("forms", `{"name":"again"}`); ok.funcErr != "" || ok.payload != `{"message":"hello again"}` {
			t.Errorf("invoke after a too large response: %+v", ok)
		}
		// Just under the limit passes (the JSON string adds 2 quotes).
		if r := ts.invoke("forms", `{"action":"big","bytes":6291554}`); r.funcErr != "" || len(r.payload) != 6291556 {
			t.Errorf("a response of exactly 6291556 bytes: FunctionError %q, %d bytes", r.funcErr, len(r.payload))
		}
	})
}

func TestRuntimeEnvironment(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("envfn", func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"USER_VAR": "42", "OTHER": "a=b c"}}
	})
	env := envOf(t, ts.invoke("envfn", `{"action":"env"}`))
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "envfn",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
		"AWS_LAMBDA_RUNTIME_API":          "127.0.0.1:9001",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/envfn",
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      "us-east-1",
		"AWS_DEFAULT_REGION":              "us-east-1",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                "/var/task",
		"LANG":                            "en_US.UTF-8",
		"PATH":                            "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"TZ":                              ":UTC",
		"USER_VAR":                        "42",
		"OTHER":                           "a=b c",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !strings.Contains(env["AWS_LAMBDA_LOG_STREAM_NAME"], "[$LATEST]") {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	// Nothing of Owl's own environment leaks in, and aws-lambda-go must not
	// see _LAMBDA_SERVER_PORT; provided runtimes have no AWS_EXECUTION_ENV.
	for k := range env {
		if k == "_LAMBDA_SERVER_PORT" || k == "AWS_EXECUTION_ENV" || strings.HasPrefix(k, "OWL_") || k == "GOMAXPROCS" || k == "GOGC" {
			t.Errorf("the runtime sees %s=%q", k, env[k])
		}
	}
}
