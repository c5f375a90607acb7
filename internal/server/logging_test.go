package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/testkit"
)

// loggingPy and loggingJS log at INFO and WARN and write a line past the
// logger; they return their request id.
const loggingPy = `import logging
def handler(event, context):
    print("print line")
    logging.getLogger().info("info line")
    logging.getLogger("app").warning("warn line")
    return context.aws_request_id
`

const loggingJS = `export const handler = async (event, context) => {
  console.log("log line");
  console.info("info line");
  console.warn("warn line");
  return context.awsRequestId;
};
`

// TestLoggingConfig: functions set to JSON with ApplicationLogLevel WARN
// log Lambda's JSON records and platform events (none with SystemLogLevel
// WARN), in the invoke's log tail and in the stored log; back to Text,
// the lines are Lambda's text again.
func TestLoggingConfig(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	for _, tc := range []struct {
		runtime, handler, file, body string
		system                       types.SystemLogLevel
		// wantJSON are the log's lines in JSON (id: the request id), as
		// regular expressions; wantText, back in Text.
		wantJSON, wantText []string
	}{
		{"python3", "app.handler", "app.py", loggingPy, types.SystemLogLevelInfo,
			[]string{
				`\{"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","type":"platform\.start","record":\{"requestId":"ID","version":"\$LATEST"\}\}`,
				`print line`,
				`\{"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "level": "WARNING", "message": "warn line", "logger": "app", "requestId": "ID"\}`,
				`\{"time":"[^"]+","type":"platform\.report","record":\{"requestId":"ID","metrics":\{"durationMs":[\d.]+,"billedDurationMs":\d+,"memorySizeMB":128,"maxMemoryUsedMB":\d+(,"initDurationMs":[\d.]+)?\},"status":"success"\}\}`,
			},
			[]string{
				`START RequestId: ID Version: \$LATEST`,
				`print line`,
				`\[INFO\]\t\S+Z\tID\tinfo line`,
				`\[WARNING\]\t\S+Z\tID\twarn line`,
				`END RequestId: ID`,
				`REPORT RequestId: ID\tDuration: .*`,
			}},
		{"nodejs", "index.handler", "index.mjs", loggingJS, types.SystemLogLevelWarn,
			[]string{
				`\{"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"WARN","requestId":"ID","message":"warn line"\}`,
			},
			[]string{
				`START RequestId: ID Version: \$LATEST`,
				`\S+Z\tID\tINFO\tlog line`,
				`\S+Z\tID\tINFO\tinfo line`,
				`\S+Z\tID\tWARN\twarn line`,
				`END RequestId: ID`,
				`REPORT RequestId: ID\tDuration: .*`,
			}},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, tc.runtime) })
			if i < 0 {
				testkit.Skipf(t, "no %s interpreter on this machine (runtimes: %v)", tc.runtime, runtimes.IDs())
			}
			ts := ts.as(t)
			name := "logcfg-" + tc.runtime
			_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
				FunctionName: aws.String(name), Runtime: types.Runtime(runtimes.IDs()[i]), Handler: aws.String(tc.handler),
				Role: aws.String("arn:aws:iam::000000000000:role/owl"),
				Code: &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: tc.file, body: tc.body})},
				LoggingConfig: &types.LoggingConfig{LogFormat: types.LogFormatJson,
					ApplicationLogLevel: types.ApplicationLogLevelWarn, SystemLogLevel: tc.system},
			})
			if err != nil {
				t.Fatalf("CreateFunction: %v", err)
			}
			ts.wantLog(name, tc.wantJSON)
			ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(name),
				LoggingConfig: &types.LoggingConfig{LogFormat: types.LogFormatText}})
			ts.wantLog(name, tc.wantText)
		})
	}

	t.Run("levels need JSON", func(t *testing.T) {
		ts := ts.as(t)
		ts.createKitchensink("logcfg-text")
		_, err := ts.sdk().UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
			FunctionName:  aws.String("logcfg-text"),
			LoggingConfig: &types.LoggingConfig{ApplicationLogLevel: types.ApplicationLogLevelDebug},
		})
		var re *awshttp.ResponseError
		var ae smithy.APIError
		if !errors.As(err, &re) || !errors.As(err, &ae) || re.HTTPStatusCode() != 400 ||
			ae.ErrorCode() != "InvalidParameterValueException" || !strings.Contains(ae.ErrorMessage(), `LogLevel is not supported when LogFormat is set to "Text"`) {
			t.Fatalf("levels with Text: %v, want InvalidParameterValueException (400)", err)
		}
	})

	t.Run("boto3", func(t *testing.T) {
		ts := ts.as(t)
		py := pythonWithBoto3(t)
		ts.createKitchensink("logcfg-boto3")
		script := `
import boto3, json, sys
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
if "LoggingConfig" not in c.meta.service_model.shape_for("UpdateFunctionConfigurationRequest").members:
    print(json.dumps({"old": True}))
    sys.exit(0)
u = c.update_function_configuration(FunctionName="logcfg-boto3",
    LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "ERROR"})
g = c.get_function_configuration(FunctionName="logcfg-boto3")
try:
    c.update_function_configuration(FunctionName="logcfg-boto3", LoggingConfig={"LogFormat": "XML"})
    code = None
except c.exceptions.ClientError as e:
    code = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
print(json.dumps({"updated": u["LoggingConfig"], "got": g["LoggingConfig"], "bad": code}))
`
		cmd := exec.Command(py, "-c", script, ts.URL, testKeyID, testSecret)
		cmd.Env = awsClientEnv()
		stdout, stderr, code := runCmd(t, cmd)
		var out struct {
			Old          bool
			Updated, Got map[string]string
			Bad          []any
		}
		if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil {
			t.Fatalf("boto3: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if out.Old {
			t.Log("this botocore predates LoggingConfig: nothing to check")
			return
		}
		want := map[string]string{"LogFormat": "JSON", "ApplicationLogLevel": "ERROR", "SystemLogLevel": "INFO", "LogGroup": "/aws/lambda/logcfg-boto3"}
		b, _ := json.Marshal(want)
		if u, _ := json.Marshal(out.Updated); string(u) != string(b) {
			t.Errorf("update_function_configuration answered LoggingConfig %s, want %s", u, b)
		}
		if g, _ := json.Marshal(out.Got); string(g) != string(b) {
			t.Errorf("get_function_configuration: LoggingConfig %s, want %s", g, b)
		}
		if bad, _ := json.Marshal(out.Bad); string(bad) != `["ValidationException",400]` {
			t.Errorf("LogFormat XML: %s, want ValidationException 400", bad)
		}
	})
}

// wantLog invokes name and checks that its log tail and then the stored
// log of the invocation are exactly the lines want (ID stands for the
// request id).
func (ts *testServer) wantLog(name string, want []string) {
	ts.t.Helper()
	r := ts.invoke(name, `{}`)
	var id string
	if r.funcErr != "" || json.Unmarshal([]byte(r.payload), &id) != nil {
		ts.t.Fatalf("invoke %s: %s %s\n%s", name, r.funcErr, r.payload, r.log)
	}
	re := make([]string, len(want))
	for i, w := range want {
		re[i] = strings.ReplaceAll(w, "ID", regexp.QuoteMeta(id))
	}
	wantLines(ts.t, "log tail", r.log, re)
	last := regexp.MustCompile(`(^|\n)` + re[len(re)-1] + `\n$`)
	var stored string
	testkit.WaitFor(ts.t, 30*time.Second, "the invocation's last line in the stored log", func() bool {
		resp, body := ts.do(http.MethodGet, "/owl/v1/functions/"+name+"/logs?request="+url.QueryEscape(id), nil, nil)
		if resp.StatusCode != http.StatusOK {
			ts.t.Fatalf("logs of %s: %d %s", name, resp.StatusCode, body)
		}
		stored = string(body)
		return last.MatchString(stored)
	})
	wantLines(ts.t, "stored log", stored, re)
}

// wantLines fails t unless s's lines match the regular expressions re
// (whole lines), in order.
func wantLines(t testing.TB, what, s string, re []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) != len(re) {
		t.Errorf("%s has %d lines, want %d:\n%s", what, len(lines), len(re), s)
		return
	}
	for i, r := range re {
		if !regexp.MustCompile(`^` + r + `$`).MatchString(lines[i]) {
			t.Errorf("%s: line %d = %q, want /%s/", what, i+1, lines[i], r)
		}
	}
}
