package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit"
)

// streamNode streams with awslambda.streamifyResponse: n numbered chunks
// then big bytes; delay writes a chunk, waits delay ms and writes another;
// "hold" writes one chunk and then waits far longer than
// any test; "fail" throws after its first chunk; "http" answers a
// function URL with HttpResponseStream's prelude.
const streamNode = `export const handler = awslambda.streamifyResponse(async (event, stream, context) => {
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  if (event.rawPath === '/hold') {
    stream = awslambda.HttpResponseStream.from(stream, {statusCode: 200, headers: {'content-type': 'text/plain'}});
  }
  if (event.mode === 'hold' || event.rawPath === '/hold') {
    stream.write('first chunk');
    console.log('holding');
    await pause(600000);
    stream.end('never');
    return;
  }
  if (event.delay) {
    stream.write('first');
    await pause(event.delay);
    stream.end(' last');
    return;
  }
  if (event.mode === 'fail') {
    stream.write('partial');
    await pause(10);
    throw new Error('broke mid-stream');
  }
  if (event.rawPath !== undefined) {
    stream = awslambda.HttpResponseStream.from(stream, {statusCode: 201, headers: {'x-owl': 'hoot', 'content-type': 'text/plain'}, cookies: ['a=1']});
    stream.write('streamed ' + event.rawPath);
    await pause(10);
    stream.end(' over HTTP');
    return;
  }
  stream.setContentType('text/plain');
  for (let i = 0; i < (event.n || 0); i++) {
    stream.write('chunk ' + i + '\n');
    await pause(5);
  }
  if (event.big) stream.write('x'.repeat(event.big));
  stream.end();
});
`

// echoPython answers whole: the buffered runtime InvokeWithResponseStream
// answers as one chunk.
const echoPython = `def handler(event, context):
    if event.get("fail"):
        raise ValueError("bad input")
    return {"echo": event}
`

// streamed is what InvokeWithResponseStream answered, as aws-sdk-go-v2
// reads it.
type streamed struct {
	version, contentType, requestID string
	chunks                          []string
	complete                        *types.InvokeWithResponseStreamCompleteEvent
}

func (s streamed) body() string { return strings.Join(s.chunks, "") }

// invokeStream calls InvokeWithResponseStream with aws-sdk-go-v2 and reads
// the whole event stream.
func (ts *testServer) invokeStream(t *testing.T, name, payload string) streamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := ts.sdk().InvokeWithResponseStream(ctx, &lambda.InvokeWithResponseStreamInput{
		FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail})
	if err != nil {
		t.Fatalf("InvokeWithResponseStream %s: %v", name, err)
	}
	s := streamed{version: aws.ToString(out.ExecutedVersion), contentType: aws.ToString(out.ResponseStreamContentType)}
	s.requestID, _ = awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	es := out.GetStream()
	defer es.Close()
	for ev := range es.Events() {
		switch v := ev.(type) {
		case *types.InvokeWithResponseStreamResponseEventMemberPayloadChunk:
			if s.complete != nil {
				t.Fatalf("a PayloadChunk after InvokeComplete")
			}
			s.chunks = append(s.chunks, string(v.Value.Payload))
		case *types.InvokeWithResponseStreamResponseEventMemberInvokeComplete:
			s.complete = &v.Value
		default:
			t.Fatalf("unexpected event %T", ev)
		}
	}
	if err := es.Err(); err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}
	if s.complete == nil {
		t.Fatalf("the stream ended without InvokeComplete (chunks %q)", s.chunks)
	}
	return s
}

// metric is the value of one sample line of /metrics ("" when absent).
func (ts *testServer) metric(sample string) string {
	ts.t.Helper()
	_, body := ts.do("GET", "/metrics", nil, nil)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestInvokeWithResponseStream: a Node function wrapped in
// awslambda.streamifyResponse streams through InvokeWithResponseStream to
// aws-sdk-go-v2 (chunks as written, past Invoke's 6 MB, then InvokeComplete
// with the log's tail); its first chunk reaches the client while it still
// runs, and a client that hangs up ends the invocation and recycles the
// environment, its log still ending in END and REPORT; a failure after the
// first byte is InvokeComplete's ErrorCode; a buffered runtime's answer is
// one chunk; bad requests get Lambda's errors.
func TestInvokeWithResponseStream(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	zip := makeZip(t, zipEntry{name: "index.mjs", body: streamNode})
	if _, err := ts.sdk().CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("stream-node"), Runtime: types.Runtime(interpreter(t, "nodejs")), Handler: aws.String("index.handler"),
		Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: zip}, Timeout: aws.Int32(900),
		MemorySize: aws.Int32(256),
	}); err != nil {
		t.Fatalf("CreateFunction: %v", err)
	}
	ts.createZip("stream-py", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: echoPython}))

	t.Run("chunks as written, past 6 MB", func(t *testing.T) {
		const big = 7 << 20
		s := ts.as(t).invokeStream(t, "stream-node", fmt.Sprintf(`{"n":3,"big":%d}`, big))
		want := "chunk 0\nchunk 1\nchunk 2\n" + strings.Repeat("x", big)
		if s.body() != want || len(s.chunks) < 4 {
			t.Fatalf("got %d bytes in %d chunks, want %d bytes in at least 4", len(s.body()), len(s.chunks), len(want))
		}
		if s.version != "$LATEST" || s.contentType != "application/vnd.amazon.eventstream" {
			t.Errorf("ExecutedVersion %q, content type %q", s.version, s.contentType)
		}
		c := s.complete
		if c.ErrorCode != nil || c.ErrorDetails != nil {
			t.Errorf("InvokeComplete reports an error: %s %s", aws.ToString(c.ErrorCode), aws.ToString(c.ErrorDetails))
		}
		tail, err := base64.StdEncoding.DecodeString(aws.ToString(c.LogResult))
		if err != nil {
			t.Fatalf("LogResult: %v", err)
		}
		testkit.Contains(t, "LogResult", string(tail), "END RequestId: "+s.requestID, "REPORT RequestId: "+s.requestID, "Billed Duration")
		if v := ts.as(t).metric(`owl_invocations_total{function="stream-node",outcome="success",version="$LATEST"}`); v == "" || v == "0" {
			t.Errorf("owl_invocations_total of the streamed success: %q", v)
		}
		// Billed as any invocation: its REPORT's Billed Duration at its memory.
		eventually(t, time.Minute, func() error {
			_, body := ts.as(t).do("GET", "/owl/v1/usage?function=stream-node", nil, nil)
			var got lambdawire.UsageReport
			if err := json.Unmarshal(body, &got); err != nil {
				return err
			}
			if len(got.Usage) != 1 || got.Usage[0].Invocations < 1 || got.Usage[0].BilledMs <= 0 || got.Usage[0].MBMs != got.Usage[0].BilledMs*256 {
				return fmt.Errorf("usage of stream-node: %s", body)
			}
			return nil
		})
	})

	t.Run("first byte before the end; a client that leaves ends it", func(t *testing.T) {
		ictx, cancel := context.WithCancel(ctx)
		defer cancel()
		out, err := ts.sdk().InvokeWithResponseStream(ictx, &lambda.InvokeWithResponseStreamInput{
			FunctionName: aws.String("stream-node"), Payload: []byte(`{"mode":"hold"}`)})
		if err != nil {
			t.Fatalf("InvokeWithResponseStream: %v", err)
		}
		id, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
		es := out.GetStream()
		var ev types.InvokeWithResponseStreamResponseEvent
		select {
		case ev = <-es.Events():
		case <-time.After(time.Minute):
			t.Fatal("no first chunk within a minute")
		}
		if c, ok := ev.(*types.InvokeWithResponseStreamResponseEventMemberPayloadChunk); !ok || string(c.Value.Payload) != "first chunk" {
			t.Fatalf("first event %#v, want the chunk \"first chunk\"", ev)
		}
		// The function holds for ten minutes: it is running now.
		if v := ts.as(t).metric("owl_concurrent_executions"); v != "1" {
			t.Fatalf("owl_concurrent_executions %q with the first chunk read, want 1", v)
		}
		es.Close()
		cancel()
		eventually(t, time.Minute, func() error {
			busy := ts.as(t).metric(`owl_function_environments{function="stream-node",state="busy"}`)
			idle := ts.as(t).metric(`owl_function_environments{function="stream-node",state="idle"}`)
			if c := ts.as(t).metric("owl_concurrent_executions"); c != "0" || (busy != "" && busy != "0") || (idle != "" && idle != "0") {
				return fmt.Errorf("concurrent %s, busy %q, idle %q: the invocation or its environment lives on", c, busy, idle)
			}
			return nil
		})
		eventually(t, time.Minute, func() error {
			log := ts.as(t).logText("stream-node")
			for _, want := range []string{"holding", "END RequestId: " + id, "REPORT RequestId: " + id} {
				if !strings.Contains(log, want) {
					return fmt.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			return nil
		})
		// Nothing else lost: the function streams again, from a fresh environment.
		if s := ts.as(t).invokeStream(t, "stream-node", `{"n":1}`); s.body() != "chunk 0\n" {
			t.Fatalf("after the hang-up: %q", s.body())
		}
	})

	t.Run("an error mid-stream", func(t *testing.T) {
		s := ts.as(t).invokeStream(t, "stream-node", `{"mode":"fail"}`)
		if s.body() != "partial" || aws.ToString(s.complete.ErrorCode) != "Error" || aws.ToString(s.complete.ErrorDetails) != "broke mid-stream" {
			t.Fatalf("chunks %q, InvokeComplete %s %q", s.chunks, aws.ToString(s.complete.ErrorCode), aws.ToString(s.complete.ErrorDetails))
		}
	})

	t.Run("a timeout mid-stream", func(t *testing.T) {
		if _, err := ts.sdk().CreateFunction(ctx, &lambda.CreateFunctionInput{
			FunctionName: aws.String("stream-short"), Runtime: types.Runtime(interpreter(t, "nodejs")), Handler: aws.String("index.handler"),
			Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: zip}, Timeout: aws.Int32(2),
		}); err != nil {
			t.Fatalf("CreateFunction: %v", err)
		}
		s := ts.as(t).invokeStream(t, "stream-short", `{"mode":"hold"}`)
		if s.body() != "first chunk" || aws.ToString(s.complete.ErrorCode) != "Sandbox.Timedout" || !strings.Contains(aws.ToString(s.complete.ErrorDetails), "Task timed out after 2.00 seconds") {
			t.Fatalf("chunks %q, InvokeComplete %s %q", s.chunks, aws.ToString(s.complete.ErrorCode), aws.ToString(s.complete.ErrorDetails))
		}
	})

	t.Run("a buffered runtime is one chunk", func(t *testing.T) {
		s := ts.as(t).invokeStream(t, "stream-py", `{"a":1}`)
		var got struct{ Echo struct{ A int } }
		if len(s.chunks) != 1 || json.Unmarshal([]byte(s.chunks[0]), &got) != nil || got.Echo.A != 1 || s.complete.ErrorCode != nil {
			t.Fatalf("chunks %q, InvokeComplete %+v", s.chunks, s.complete)
		}
		s = ts.as(t).invokeStream(t, "stream-py", `{"fail":true}`)
		if len(s.chunks) != 0 || aws.ToString(s.complete.ErrorCode) != "ValueError" || aws.ToString(s.complete.ErrorDetails) != "bad input" {
			t.Fatalf("chunks %q, InvokeComplete %s %q", s.chunks, aws.ToString(s.complete.ErrorCode), aws.ToString(s.complete.ErrorDetails))
		}
	})

	t.Run("boto3", func(t *testing.T) {
		// boto3 reads the stream with botocore's event stream parser, the
		// AWS CLI v2's own; the AWS CLI v1 has no invoke-with-response-stream.
		py := pythonWithBoto3(t)
		for payload, want := range map[string]string{`{"n":2}`: "", `{"mode":"fail"}`: "Error"} {
			var got struct {
				Status               int
				Version, ContentType string
				Chunks               []string
				Complete             map[string]string
			}
			out := runBoto3(t, py, "boto3_stream.py", ts.URL, testKeyID, testSecret, "stream-node", payload)
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("boto3_stream.py printed %s: %v", out, err)
			}
			body := strings.Join(got.Chunks, "")
			if got.Status != 200 || got.Version != "$LATEST" || got.ContentType != "application/vnd.amazon.eventstream" || got.Complete == nil ||
				got.Complete["ErrorCode"] != want || (want == "" && body != "chunk 0\nchunk 1\n") || (want != "" && body != "partial") {
				t.Errorf("payload %s: boto3 read %s", payload, out)
			}
			if log, _ := base64.StdEncoding.DecodeString(got.Complete["LogResult"]); !strings.Contains(string(log), "REPORT RequestId:") {
				t.Errorf("payload %s: LogResult %q lacks REPORT", payload, log)
			}
		}
	})

	t.Run("a RESPONSE_STREAM function URL", func(t *testing.T) {
		ts := ts.as(t)
		out, err := ts.sdk().CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("stream-node"),
			AuthType: types.FunctionUrlAuthTypeNone, InvokeMode: types.InvokeModeResponseStream})
		if err != nil || out.InvokeMode != types.InvokeModeResponseStream {
			t.Fatalf("CreateFunctionUrlConfig: %v (%+v)", err, out)
		}
		url := aws.ToString(out.FunctionUrl)
		if got, err := ts.sdk().GetFunctionUrlConfig(ctx, &lambda.GetFunctionUrlConfigInput{FunctionName: aws.String("stream-node")}); err != nil ||
			got.InvokeMode != types.InvokeModeResponseStream {
			t.Fatalf("GetFunctionUrlConfig: %v (%+v)", err, got)
		}
		// The prelude gives the status, headers and cookies.
		resp, body := httpDo(t, "GET", url+"greet", nil, nil)
		if resp.StatusCode != 201 || resp.Header.Get("X-Owl") != "hoot" || resp.Header.Get("Content-Type") != "text/plain" ||
			resp.Header.Get("Set-Cookie") != "a=1" || string(body) != "streamed /greet over HTTP" {
			t.Fatalf("%d %v %q", resp.StatusCode, resp.Header, body)
		}
		// The first bytes arrive while the function runs; hanging up ends it.
		req, _ := http.NewRequest("GET", url+"hold", nil)
		resp, err = testHTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		first := make([]byte, len("first chunk"))
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first chunk" || resp.StatusCode != 200 {
			t.Fatalf("%d %q %v", resp.StatusCode, first, err)
		}
		if v := ts.metric("owl_concurrent_executions"); v != "1" {
			t.Fatalf("owl_concurrent_executions %q with the first bytes read, want 1", v)
		}
		resp.Body.Close()
		eventually(t, time.Minute, func() error {
			if c := ts.metric("owl_concurrent_executions"); c != "0" {
				return fmt.Errorf("owl_concurrent_executions %s after the client left", c)
			}
			return nil
		})
		// A buffered runtime behind a RESPONSE_STREAM URL answers as in BUFFERED mode.
		py, err := ts.sdk().CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("stream-py"),
			AuthType: types.FunctionUrlAuthTypeNone, InvokeMode: types.InvokeModeResponseStream})
		if err != nil {
			t.Fatal(err)
		}
		resp, body = httpDo(t, "GET", aws.ToString(py.FunctionUrl)+"whole", nil, nil)
		var echo struct{ Echo struct{ RawPath string } }
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &echo) != nil || echo.Echo.RawPath != "/whole" {
			t.Fatalf("buffered runtime behind RESPONSE_STREAM: %d %v %s", resp.StatusCode, resp.Header, body)
		}
	})

	t.Run("owl invoke --stream", func(t *testing.T) {
		stdout, stderr, code := owlCLI(t, ts.URL, "invoke", "stream-node", "--stream", "--logs", "--data", `{"n":2}`)
		if code != 0 || stdout != "chunk 0\nchunk 1\n" || !strings.Contains(stderr, "REPORT RequestId:") {
			t.Fatalf("exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
		}
		stdout, stderr, code = owlCLI(t, ts.URL, "invoke", "stream-node", "--stream", "--data", `{"mode":"fail"}`)
		if code != 1 || stdout != "partial" || !strings.Contains(stderr, "Error: broke mid-stream") {
			t.Fatalf("exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
		}
		// The tour's example (examples/stream-node) prints its lines.
		example, err := os.ReadFile("../../examples/stream-node/index.mjs")
		if err != nil {
			t.Fatal(err)
		}
		ts.as(t).createZip("stream-example", interpreter(t, "nodejs"), "index.handler", makeZip(t, zipEntry{name: "index.mjs", body: string(example)}))
		stdout, stderr, code = owlCLI(t, ts.URL, "invoke", "stream-example", "--stream", "--data", `{"lines":2}`)
		if code != 0 || stdout != "line 1 of 2\nline 2 of 2\n" {
			t.Fatalf("the example: exit %d\nstdout %q\nstderr %s", code, stdout, stderr)
		}
		// The first chunk is printed while the function still runs.
		cmd := exec.Command(owlBinary, "invoke", "stream-node", "--stream", "--data", `{"mode":"hold"}`)
		cmd.Env = owlEnv("OWL_ENDPOINT="+ts.URL, "OWL_DATA="+filepath.Join(t.TempDir(), "none"))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
		}()
		first := make([]byte, len("first chunk"))
		if _, err := io.ReadFull(out, first); err != nil || string(first) != "first chunk" {
			t.Fatalf("owl invoke --stream printed %q, %v", first, err)
		}
		if v := ts.as(t).metric("owl_concurrent_executions"); v != "1" {
			t.Fatalf("owl_concurrent_executions %q with the first chunk printed, want 1", v)
		}
		cmd.Process.Kill() // the client goes: so does the invocation
		eventually(t, time.Minute, func() error {
			if c := ts.as(t).metric("owl_concurrent_executions"); c != "0" {
				return fmt.Errorf("owl_concurrent_executions %s after owl was killed", c)
			}
			return nil
		})
	})

	t.Run("bad requests", func(t *testing.T) {
		ts := ts.as(t)
		path := func(name string) string { return "/2021-11-15/functions/" + name + "/response-streaming-invocations" }
		resp, body := ts.do(http.MethodPost, path("stream-node"), []byte(`{}`), map[string]string{"X-Amz-Invocation-Type": "Event"})
		wantError(t, resp, body, 400, "ValidationException", "1 validation error detected: Value 'Event' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]")
		resp, body = ts.do(http.MethodPost, path("no-such"), []byte(`{}`), nil)
		wantError(t, resp, body, 404, "ResourceNotFoundException", "~no-such")
		resp, body = ts.do(http.MethodPost, path("stream-node"), []byte(`{not json`), nil)
		wantError(t, resp, body, 400, "InvalidRequestContentException", "~Could not parse request body into json")
		resp, body = ts.do(http.MethodPost, path("stream-node"), []byte(`{}`), map[string]string{"X-Amz-Invocation-Type": "DryRun"})
		if resp.StatusCode != http.StatusNoContent || len(bytes.TrimSpace(body)) != 0 {
			t.Errorf("DryRun: %d %s", resp.StatusCode, body)
		}
	})
}
