package server_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit"
)

// TestLogsFollow: owl logs -f prints the recent lines, then the lines of
// an invocation made after it started — each line as the function writes
// it, while the invocation still runs — and ends with a clear line when
// the function is deleted. On the way, owl logs --json and --request
// select and describe lines, and bad filters are refused.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "")
	ts.createKitchensink("followed", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(600) })
	ts.invoke("followed", `{"print":"before the follow"}`)

	follow := startOwlCommand(t, ts.URL, "logs", "followed", "-f")
	out := follow.out
	testkit.WaitFor(t, time.Minute, "the recent lines", func() bool { return strings.Contains(out.String(), "before the follow") })

	ts.invoke("followed", `{"print":"while following"}`)
	testkit.WaitFor(t, time.Minute, "the new invocation's lines", func() bool { return strings.Contains(out.String(), "while following") })
	if !strings.Contains(out.String(), "REPORT RequestId: ") {
		t.Fatalf("no REPORT line followed:\n%s", out.String())
	}
	testkit.WaitFor(t, time.Minute, "two END lines", func() bool { return strings.Count(out.String(), "END RequestId: ") == 2 })

	// A line reaches the follower while its invocation runs: it sleeps
	// until the test leaves, its function's timeout is ten minutes away,
	// and no END line comes before the line does.
	ictx, leave := context.WithCancel(context.Background())
	invoked := make(chan error, 1)
	go func() {
		_, err := ts.sdk().Invoke(ictx, &lambda.InvokeInput{FunctionName: aws.String("followed"),
			Payload: []byte(`{"print":"live line","action":"sleep","ms":600000}`)})
		invoked <- err
	}()
	testkit.WaitFor(t, time.Minute, "a running invocation's line", func() bool { return strings.Contains(out.String(), "live line") })
	if n := strings.Count(out.String(), "END RequestId: "); n != 2 {
		t.Errorf("%d END lines by the time the running invocation's line came:\n%s", n, out.String())
	}
	leave()
	<-invoked

	checkLogQueries(t, ts)

	if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("followed")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-follow.done:
		if follow.err != nil || !strings.Contains(out.String(), "owl: function followed was deleted; its log ends here") {
			t.Fatalf("owl logs -f after the deletion: %v\n%s", follow.err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("owl logs -f goes on after the function was deleted:\n%s", out.String())
	}
}

// checkLogQueries reads function followed's log (two invocations that
// printed "before the follow" and "while following", then one that
// printed "live line" and was left) with --json and --request, and
// refuses bad filters.
func checkLogQueries(t *testing.T, ts *testServer) {
	t.Helper()
	owl := func(args ...string) (string, error) {
		cmd := exec.Command(owlBinary, append([]string{"logs", "followed"}, args...)...)
		cmd.Env = owlEnv("OWL_ENDPOINT="+ts.URL, "OWL_DATA="+filepath.Join(t.TempDir(), "none"))
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	text, err := owl("--json")
	if err != nil {
		t.Fatalf("owl logs --json: %v\n%s", err, text)
	}
	var lines []lambdawire.LogLine
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		var ll lambdawire.LogLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil {
			t.Fatalf("owl logs --json printed %q: %v", l, err)
		}
		lines = append(lines, ll)
	}
	var following lambdawire.LogLine
	for _, l := range lines {
		if l.Message == "while following" {
			following = l
		}
	}
	if following.RequestID == "" || following.Version != "$LATEST" || following.Stream != lambdawire.LogFunction || following.Time.IsZero() {
		t.Fatalf("the printed line as JSON: %+v", following)
	}
	text, err = owl("--request", following.RequestID)
	if err != nil {
		t.Fatalf("owl logs --request: %v\n%s", err, text)
	}
	got := strings.Split(strings.TrimSpace(text), "\n")
	if len(got) != 4 || got[0] != "START RequestId: "+following.RequestID+" Version: $LATEST" || got[1] != "while following" ||
		got[2] != "END RequestId: "+following.RequestID || !strings.HasPrefix(got[3], "REPORT RequestId: "+following.RequestID) {
		t.Errorf("owl logs --request %s:\n%s", following.RequestID, text)
	}
	if text, err := owl("--since", "yesterday"); err == nil || !strings.Contains(text, "RFC 3339") {
		t.Errorf("--since yesterday: %v\n%s", err, text)
	}
	for _, q := range []string{"format=xml", "since=yesterday", "until=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z"} {
		resp, body := ts.do("GET", "/owl/v1/functions/followed/logs?"+q, nil, nil)
		if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "InvalidParameterValue") {
			t.Errorf("logs?%s: %d %s", q, resp.StatusCode, body)
		}
	}
}
