package server_test

// Nothing is left behind after a shutdown: no sandbox process, no cgroup,
// no mount, no bridge, veth or nftables table, no goroutine.

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestNothingLeftAfterShutdown is deliberately not parallel: it compares
// the process's goroutine count before and after, which other running
// tests would disturb (parallel tests wait, blocked, while it runs).
func TestNothingLeftAfterShutdown(t *testing.T) {
	requireRoot(t)
	build(t)
	baseline := runtime.NumGoroutine()

	dataDir := t.TempDir()
	ts := startServer(t, dataDir)
	ts.createKitchensink("left")
	ts.createKitchensink("left-broken")
	for i, r := range ts.invokeAll(3, "left", `{"action":"sleep","ms":200}`) {
		if r.funcErr != "" {
			t.Fatalf("invoke %d: %s", i, r.payload)
		}
	}
	// A crashed environment is torn down at once; a healthy one stays warm.
	if r := ts.invoke("left-broken", `{"action":"exit","code":1}`); r.funcErr == "" {
		t.Fatalf("exit action did not fail")
	}
	ts.invoke("left-broken", `{}`)

	// While the server runs, the checks below see its sandboxes: they can fail.
	inst := instanceOf(t, dataDir)
	if n := len(sandboxCgroupNames(t, inst)); n != 4 {
		t.Errorf("%d sandbox cgroups while serving, want 4 (3 warm left, 1 warm left-broken)", n)
	}
	if n := len(sandboxProcesses(inst)); n < 4 {
		t.Errorf("%d sandbox processes while serving, want at least 4", n)
	}
	// The bridge, the nftables table and a veth per (egress) environment
	// and per custom runtime's pre-warmed sandbox (made with it); the
	// crashed environment's goes with its network namespace.
	eventually(t, 5*time.Second, func() error {
		spares := waitingProvidedSpares(t, inst)
		if n := networkLeft(t, inst); len(n) != 2+4+spares {
			return fmt.Errorf("network while serving: %v, want the bridge, the table and %d veths", n, 4+spares)
		}
		return nil
	})
	if len(instanceCgroups(t, inst)) == 0 {
		t.Fatalf("no cgroups of instance %s found while serving: is the instance derived as internal/server does?", inst)
	}

	ts.stop()
	checkNothingLeft(t, dataDir)
	const tolerance = 3
	eventually(t, 10*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > baseline+tolerance {
			return fmt.Errorf("%d goroutines, %d before the server started:\n%s", n, baseline, goroutineDump())
		}
		return nil
	})
	t.Logf("goroutines: %d before the server started, %d after it stopped", baseline, runtime.NumGoroutine())
}

// waitingProvidedSpares counts the custom runtimes' pre-warmed sandboxes
// of instance that no function took yet.
func waitingProvidedSpares(t testing.TB, instance string) int {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range instanceCgroups(t, instance) {
		if name := filepath.Base(d); strings.HasPrefix(name, "prewarm-provided-") && !cgroupRunsFunction(d) {
			seen[name] = true
		}
	}
	return len(seen)
}

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
