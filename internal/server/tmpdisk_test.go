package server_test

// /tmp on disk (issue 17): every environment's /tmp is an ext4 disk of
// its own under the data dir (internal/sandbox/tmpdisk_linux.go), sized
// by EphemeralStorage, gone with its environment, and counted by the
// disk guard.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
)

// TestTmpDiskLifecycle: a function's /tmp disk lives as long as its
// environment: collected with it (its loop device and image gone), never
// seen by the next function, cold or pre-warmed, and nothing of any /tmp
// is left once the server stops.
func TestTmpDiskLifecycle(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 1 })
	// The /tmp disks kept made ahead (server.go).
	spares := config.Default().SpareInits + 2
	images := func(want int, when string) []string {
		t.Helper()
		var got []string
		eventually(t, 20*time.Second, func() error {
			if got = loopImagesUnder(t, ts.dataDir); len(got) != want {
				return fmt.Errorf("%d /tmp disks %s, want %d: %v", len(got), when, want, got)
			}
			return nil
		})
		return got
	}
	images(spares, "before any environment")

	// Cold (provided runtime): A leaves a secret in /tmp.
	secret := fmt.Sprintf("s3cr3t%d", time.Now().UnixNano())
	ts.createHostile("tmp-a", 0, 0)
	var envA []string
	decode(t, ts.invoke("tmp-a", `{"action":"secret","secret":"`+secret+`"}`), &envA)
	var a struct{ Tmp []string }
	decode(t, ts.invoke("tmp-a", `{"action":"peek","secret":"`+secret+`"}`), &a)
	if !slices.Contains(a.Tmp, "secret-"+secret) {
		t.Fatalf("A's /tmp holds %v, not the secret it wrote", a.Tmp)
	}
	withA := images(spares+1, "with A's environment")

	// A's environment is collected with the function: its disk goes.
	if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("tmp-a")}); err != nil {
		t.Fatal(err)
	}
	ts.waitEnvironments(0, "after A was deleted")
	for _, img := range images(spares, "after A's environment was collected") {
		if !slices.Contains(withA, img) {
			t.Errorf("a new /tmp disk %s appeared with nothing to take one", img)
		}
	}

	// The next function, on the disks A's left behind: nothing of A.
	ts.createHostile("tmp-b", 0, 0)
	var b struct {
		Tmp  []string
		Read string
	}
	decode(t, ts.invoke("tmp-b", `{"action":"peek","secret":"`+secret+`"}`), &b)
	if len(b.Tmp) != 0 || b.Read != enoent {
		t.Errorf("B's /tmp: %v, reading A's secret: %q; want empty and ENOENT", b.Tmp, b.Read)
	}

	// Pre-warmed environments get a fresh /tmp each too.
	for _, rt := range prewarmRuntimes(t)[:1] {
		waitPrewarmed(t, ts.Worker(), 1)
		ts.createPrewarmFunction("tmp-pw-1", rt, 128, 512, nil)
		if out := ts.invokePrewarm("tmp-pw-1"); len(out.Tmp) != 0 || out.TmpMB < 512 {
			t.Errorf("a pre-warmed environment's /tmp: %d MB free holding %v, want 512 MB and empty", out.TmpMB, out.Tmp)
		}
		if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("tmp-pw-1")}); err != nil {
			t.Fatal(err)
		}
		waitPrewarmed(t, ts.Worker(), 1)
		ts.createPrewarmFunction("tmp-pw-2", rt, 128, 512, nil)
		if out := ts.invokePrewarm("tmp-pw-2"); len(out.Tmp) != 0 {
			t.Errorf("the next pre-warmed environment's /tmp holds %v, want nothing of tmp-pw-1's", out.Tmp)
		}
	}

	ts.stop()
	checkNothingLeft(t, ts.dataDir)
}

// TestTmpDiskNoSpace: an environment whose /tmp the data dir's disk cannot
// hold above the reserve is refused with 503 ServiceUnavailableException
// saying so, before anything starts; the function stays, and runs once
// its EphemeralStorage fits.
func TestTmpDiskNoSpace(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	// Leave about 3 GB usable above the reserve: a 10 GB /tmp does not
	// fit, a 512 MB one does, whatever else the machine writes meanwhile.
	reserve := freeMB(t, dataDir) - 3000
	if reserve < 128 {
		t.Skipf("%d MB free: too little to test with", freeMB(t, dataDir))
	}
	// --tmp-overcommit 1: every /tmp counts whole against the disk.
	ts := startServer(t, dataDir, func(c *config.Config) { c.DiskReserveMB = int(reserve); c.Prewarm = 0; c.TmpOvercommit = 1 })
	ts.createHostile("big-tmp", 0, 0, func(in *lambda.CreateFunctionInput) {
		in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(10240)}
	})
	resp, body := ts.rawInvoke("big-tmp/invocations", `{"action":"peek"}`, nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, "ServiceUnavailableException", "~no disk space for its 10240 MB /tmp")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("a 503 without Retry-After")
	}
	if n := ts.Worker().Stats().Environments; n != 0 {
		t.Errorf("%d environments after the refusal, want none", n)
	}
	if _, err := ts.sdk().UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("big-tmp"), EphemeralStorage: &types.EphemeralStorage{Size: aws.Int32(512)},
	}); err != nil {
		t.Fatal(err)
	}
	var out struct{ Tmp []string }
	decode(t, ts.invoke("big-tmp", `{"action":"peek"}`), &out)
	if len(out.Tmp) != 0 {
		t.Errorf("a fresh /tmp holds %v", out.Tmp)
	}
}
