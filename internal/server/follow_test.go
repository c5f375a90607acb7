package server_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/testkit"
)

// TestLogsFollow: owl logs -f prints the recent lines, then the lines of
// an invocation made after it started, and ends with a clear line when
// the function is deleted.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "")
	ts.createKitchensink("followed")
	ts.invoke("followed", `{"print":"before the follow"}`)

	out := &testkit.Buffer{}
	cmd := exec.Command(owlBinary, "logs", "followed", "-f")
	cmd.Env = owlEnv("OWL_ENDPOINT="+ts.URL, "OWL_DATA="+filepath.Join(t.TempDir(), "none"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	testkit.WaitFor(t, time.Minute, "the recent lines", func() bool { return strings.Contains(out.String(), "before the follow") })

	ts.invoke("followed", `{"print":"while following"}`)
	testkit.WaitFor(t, time.Minute, "the new invocation's lines", func() bool { return strings.Contains(out.String(), "while following") })
	if !strings.Contains(out.String(), "REPORT RequestId: ") {
		t.Fatalf("no REPORT line followed:\n%s", out.String())
	}

	if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("followed")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil || !strings.Contains(out.String(), "owl: function followed was deleted; its log ends here") {
			t.Fatalf("owl logs -f after the deletion: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("owl logs -f goes on after the function was deleted:\n%s", out.String())
	}
}
