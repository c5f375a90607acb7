package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/testkit"
)

// urlPython answers by path: a full response (status, headers, cookies),
// a binary one, a failure, and by default the event it got.
const urlPython = `import base64, json

def handler(event, context):
    path = event["rawPath"]
    if path == "/teapot":
        return {"statusCode": 418, "headers": {"x-owl": "hoot", "content-type": "text/plain"},
                "cookies": ["a=1", "b=2; Path=/"], "body": "short and stout"}
    if path == "/binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "isBase64Encoded": True, "body": base64.b64encode(bytes([0, 1, 2])).decode()}
    if path == "/fail":
        raise ValueError("boom")
    return {"statusCode": 200, "body": json.dumps(event)}
`

const urlNode = `export const handler = async (event) => ({statusCode: 201, body: "node " + event.rawPath});
`

// interpreter is the runtime id of this machine's interpreter whose id
// starts with prefix (python3, nodejs); the test skips without one.
func interpreter(t testing.TB, prefix string) string {
	t.Helper()
	i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, prefix) })
	if i < 0 {
		testkit.Skipf(t, "no %s interpreter here (runtimes: %v)", prefix, runtimes.IDs())
	}
	return runtimes.IDs()[i]
}

// httpDo sends a plain HTTP request (no Owl credentials) and returns the
// response with its body read.
func httpDo(t *testing.T, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestFunctionURL: function URLs made with the AWS CLI and
// aws-sdk-go-v2 serve plain HTTP: payload format 2.0 in (method, path,
// query, headers, cookies, text and binary bodies), Lambda's response
// rules out (an inferred 200, a status with headers and cookies, base64
// bodies, 502 for a function error), CORS preflight answered without
// running the function, AWS_IAM URLs refusing unsigned requests and
// taking SigV4 ones; bad configs get Lambda's errors.
//
// It is long because its cases share one server and three functions in
// Go, Python and Node.js, which start once for all of them.
func TestFunctionURL(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	ts.createKitchensink("url-go")
	ts.createZip("url-py", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: urlPython}))
	ts.createZip("url-node", interpreter(t, "nodejs"), "index.handler", makeZip(t, zipEntry{name: "index.mjs", body: urlNode}))

	// url-py through the AWS CLI, with CORS.
	cli := findAWSCLI(t)
	cli.endpoint = ts.URL
	stdout, stderr, code := cli.run(t, t.TempDir(), "create-function-url-config", "--function-name", "url-py", "--auth-type", "NONE",
		"--cors", `{"AllowOrigins":["https://app.example"],"AllowMethods":["GET","POST"],"AllowHeaders":["content-type"],"ExposeHeaders":["x-owl"],"MaxAge":600}`)
	var created struct{ FunctionUrl, FunctionArn, AuthType, CreationTime string }
	if code != 0 || json.Unmarshal([]byte(stdout), &created) != nil || !strings.HasPrefix(created.FunctionUrl, ts.URL+"/lambda-url/") ||
		created.AuthType != "NONE" || created.CreationTime == "" || !strings.HasSuffix(created.FunctionArn, ":function:url-py") {
		t.Fatalf("aws lambda create-function-url-config: exit %d\n%s\n%s", code, stdout, stderr)
	}
	pyURL := created.FunctionUrl
	newURL := func(name string, auth types.FunctionUrlAuthType) string {
		out, err := ts.sdk().CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String(name), AuthType: auth})
		if err != nil {
			t.Fatalf("CreateFunctionUrlConfig %s: %v", name, err)
		}
		return aws.ToString(out.FunctionUrl)
	}
	// url-go through the owl binary.
	build(t)
	stdout, stderr, code = owlCLI(t, ts.URL, "url", "add", "url-go")
	goURL := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(goURL, ts.URL+"/lambda-url/") {
		t.Fatalf("owl url add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if stdout, _, code := owlCLI(t, ts.URL, "url", "ls", "url-go"); code != 0 || !strings.Contains(stdout, goURL) {
		t.Fatalf("owl url ls:\n%s", stdout)
	}
	nodeURL := newURL("url-node", types.FunctionUrlAuthTypeAwsIam)

	t.Run("a plain result is an inferred 200", func(t *testing.T) {
		resp, body := httpDo(t, "GET", goURL+"hello?x=1", nil, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(body) != `{"message":"hello world"}` {
			t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("payload format 2.0", func(t *testing.T) {
		resp, body := httpDo(t, "POST", pyURL+"orders/7?a=1&a=2&b=x", []byte(`{"n":1}`),
			map[string]string{"Content-Type": "application/json", "Cookie": "s=abc; t=def", "X-Custom": "yes"})
		var ev struct {
			Version, RouteKey, RawPath, RawQueryString, Body string
			IsBase64Encoded                                  bool
			Cookies                                          []string
			Headers, QueryStringParameters                   map[string]string
			RequestContext                                   struct {
				APIID           string `json:"apiId"`
				RequestID       string `json:"requestId"`
				RouteKey, Stage string
				HTTP            struct{ Method, Path, SourceIP string }
			}
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &ev) != nil {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if ev.Version != "2.0" || ev.RouteKey != "$default" || ev.RawPath != "/orders/7" || ev.RawQueryString != "a=1&a=2&b=x" ||
			ev.QueryStringParameters["a"] != "1,2" || ev.Body != `{"n":1}` || ev.IsBase64Encoded ||
			!slices.Equal(ev.Cookies, []string{"s=abc", "t=def"}) || ev.Headers["x-custom"] != "yes" ||
			ev.RequestContext.HTTP.Method != "POST" || ev.RequestContext.HTTP.Path != "/orders/7" ||
			ev.RequestContext.RouteKey != "$default" || ev.RequestContext.Stage != "$default" ||
			!strings.Contains(pyURL, ev.RequestContext.APIID) || ev.RequestContext.RequestID != resp.Header.Get("x-amzn-RequestId") {
			t.Fatalf("the event: %s", body)
		}
		resp, body = httpDo(t, "POST", pyURL+"upload", []byte{0xff, 0x00, 0x01}, map[string]string{"Content-Type": "application/octet-stream"})
		if resp.StatusCode != 200 || json.Unmarshal(body, &ev) != nil || !ev.IsBase64Encoded || ev.Body != "/wAB" {
			t.Fatalf("a binary body: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("status, headers, cookies, base64 and errors", func(t *testing.T) {
		resp, body := httpDo(t, "GET", pyURL+"teapot", nil, nil)
		if resp.StatusCode != 418 || resp.Header.Get("X-Owl") != "hoot" || string(body) != "short and stout" ||
			!slices.Equal(resp.Header.Values("Set-Cookie"), []string{"a=1", "b=2; Path=/"}) {
			t.Fatalf("teapot: %d %v %s", resp.StatusCode, resp.Header, body)
		}
		if resp, body := httpDo(t, "GET", pyURL+"binary", nil, nil); resp.StatusCode != 200 || !bytes.Equal(body, []byte{0, 1, 2}) {
			t.Fatalf("binary: %d %v", resp.StatusCode, body)
		}
		if resp, body := httpDo(t, "GET", pyURL+"fail", nil, nil); resp.StatusCode != 502 || string(body) != `{"Message":"Internal Server Error"}` {
			t.Fatalf("a function error: %d %s", resp.StatusCode, body)
		}
		if resp, _ := httpDo(t, "GET", ts.URL+"/lambda-url/nosuchurlid0000000000000000000000/", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("an unknown URL: %d", resp.StatusCode)
		}
	})

	t.Run("CORS", func(t *testing.T) {
		runs := countStarts(ts.logText("url-py"))
		resp, _ := httpDo(t, "OPTIONS", pyURL+"orders", nil, map[string]string{
			"Origin": "https://app.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Max-Age") != "600" ||
			h.Get("Access-Control-Allow-Headers") != "content-type" {
			t.Fatalf("preflight: %d %v", resp.StatusCode, h)
		}
		if resp, _ := httpDo(t, "OPTIONS", pyURL+"orders", nil, map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}); resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("a preflight from another origin was allowed: %v", resp.Header)
		}
		resp, _ = httpDo(t, "GET", pyURL+"teapot", nil, map[string]string{"Origin": "https://app.example"})
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" || resp.Header.Get("Access-Control-Expose-Headers") != "x-owl" {
			t.Fatalf("a cross-origin response: %v", resp.Header)
		}
		if n := countStarts(ts.logText("url-py")); n != runs+1 {
			t.Fatalf("the function ran %d times for two preflights and a GET, want 1", n-runs)
		}
	})

	t.Run("AWS_IAM", func(t *testing.T) {
		if resp, body := httpDo(t, "GET", nodeURL+"x", nil, nil); resp.StatusCode != 403 {
			t.Fatalf("an unsigned request: %d %s", resp.StatusCode, body)
		}
		req, _ := http.NewRequest("GET", nodeURL+"x", nil)
		creds := aws.Credentials{AccessKeyID: testKeyID, SecretAccessKey: testSecret}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, sha256Hex(nil), "lambda", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := testHTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 201 || string(body) != "node /x" {
			t.Fatalf("a SigV4 request: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("config operations and bad input", func(t *testing.T) {
		got, err := ts.sdk().GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("url-py")})
		if err != nil || aws.ToString(got.FunctionUrl) != pyURL || got.Cors == nil || aws.ToInt32(got.Cors.MaxAge) != 600 {
			t.Fatalf("GetFunctionUrlConfig: %+v %v", got, err)
		}
		list, err := ts.sdk().ListFunctionUrlConfigs(ctx, &lambda.ListFunctionUrlConfigsInput{FunctionName: aws.String("url-py")})
		if err != nil || len(list.FunctionUrlConfigs) != 1 {
			t.Fatalf("ListFunctionUrlConfigs: %+v %v", list, err)
		}
		// Requiring SigV4 takes effect at once.
		if _, err := ts.sdk().UpdateFunctionUrlConfig(ctx, &lambda.UpdateFunctionUrlConfigInput{
			FunctionName: aws.String("url-go"), AuthType: types.FunctionUrlAuthTypeAwsIam}); err != nil {
			t.Fatal(err)
		}
		if resp, _ := httpDo(t, "GET", goURL, nil, nil); resp.StatusCode != 403 {
			t.Fatalf("url-go after AuthType AWS_IAM, unsigned: %d", resp.StatusCode)
		}
		for _, c := range []struct {
			method, path, body string
			status             int
			code               string
		}{
			{"POST", "/2021-10-31/functions/url-py/url", `{"AuthType":"NONE"}`, 409, "ResourceConflictException"},
			{"POST", "/2021-10-31/functions/url-node/url?Qualifier=live", `{"AuthType":"NONE"}`, 404, "ResourceNotFoundException"},
			{"POST", "/2021-10-31/functions/url-node/url?Qualifier=1", `{"AuthType":"NONE"}`, 400, "ValidationException"},
			{"POST", "/2021-10-31/functions/nope/url", `{"AuthType":"NONE"}`, 404, "ResourceNotFoundException"},
			{"POST", "/2021-10-31/functions/url-py/url?Qualifier=$LATEST", `{"AuthType":"BASIC"}`, 400, "ValidationException"},
			{"PUT", "/2021-10-31/functions/url-py/url", `{"Cors":{"MaxAge":90000}}`, 400, "ValidationException"},
			{"PUT", "/2021-10-31/functions/url-py/url", `{"InvokeMode":"STREAMING"}`, 400, "ValidationException"},
			{"GET", "/2021-10-31/functions/url-go/url?Qualifier=live", "", 404, "ResourceNotFoundException"},
		} {
			resp, body := ts.do(c.method, c.path, []byte(c.body), nil)
			if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-Errortype") != c.code {
				t.Errorf("%s %s %s: %d %s %s, want %d %s", c.method, c.path, c.body, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body, c.status, c.code)
			}
		}
		if _, err := ts.sdk().DeleteFunctionUrlConfig(ctx, &lambda.DeleteFunctionUrlConfigInput{FunctionName: aws.String("url-py")}); err != nil {
			t.Fatal(err)
		}
		if resp, _ := httpDo(t, "GET", pyURL+"teapot", nil, nil); resp.StatusCode != 404 {
			t.Fatalf("a deleted URL answers %d", resp.StatusCode)
		}
	})
}
