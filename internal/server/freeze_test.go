package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/config"
)

// frozenState reads the freezer state of a sandbox cgroup of the instance:
// "FROZEN" or "THAWED" (cgroup v1 freezer, or v2's cgroup.events).
func frozenState(t *testing.T, instance, cgroup string) string {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/freezer/owl", instance, cgroup, "freezer.state")); err == nil {
		return strings.TrimSpace(string(b))
	}
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		b, err := os.ReadFile(filepath.Join(root, "owl", instance, cgroup, "cgroup.events"))
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "frozen 1") {
			return "FROZEN"
		}
		return "THAWED"
	}
	t.Fatalf("no freezer state for sandbox %s of instance %s", cgroup, instance)
	return ""
}

// The function's sandbox: the one cgroup of the instance running its
// bootstrap (spare inits are not it).
func functionCgroup(t *testing.T, instance string) string {
	t.Helper()
	var found string
	eventually(t, 5*time.Second, func() error {
		for _, p := range sandboxProcessCgroups(instance) {
			if p.comm == "bootstrap" {
				found = p.cgroup
				return nil
			}
		}
		return fmt.Errorf("no bootstrap process in instance %s: %v", instance, sandboxProcesses(instance))
	})
	return found
}

func TestIdleEnvironmentsAreFrozenAndThawedOnUse(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.FreezeAfter = 20 * time.Millisecond })
	ts.createKitchensink("freezer")
	if r := ts.invoke("freezer", `{"action":"context"}`); r.funcErr != "" {
		t.Fatalf("first invoke: %s", r.payload)
	}
	instance := instanceOf(t, ts.dataDir)
	cg := functionCgroup(t, instance)

	eventually(t, 5*time.Second, func() error {
		if st := ts.Worker().Stats(); st.Frozen != 1 {
			return fmt.Errorf("stats %+v, want 1 frozen", st)
		}
		if s := frozenState(t, instance, cg); s != "FROZEN" {
			return fmt.Errorf("freezer state %s", s)
		}
		return nil
	})

	// The frozen environment serves the next invocation (warm: same
	// process, so no second cold start) and is frozen again afterwards.
	r := ts.invoke("freezer", `{"action":"context"}`)
	if r.funcErr != "" || !strings.Contains(r.payload, `"coldStarts":1`) {
		t.Fatalf("invoke after freeze: %s %s", r.funcErr, r.payload)
	}
	if strings.Contains(r.log, "Init Duration") {
		t.Errorf("thawed invocation reported a cold start:\n%s", r.log)
	}
	eventually(t, 5*time.Second, func() error {
		if s := frozenState(t, instance, cg); s != "FROZEN" {
			return fmt.Errorf("freezer state %s after the second invocation", s)
		}
		return nil
	})
}

func TestFreezingCanBeTurnedOff(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.FreezeAfter = 0 })
	ts.createKitchensink("nofreeze")
	ts.invoke("nofreeze", `{}`)
	instance := instanceOf(t, ts.dataDir)
	cg := functionCgroup(t, instance)
	// Nothing to wait for: give a would-be freeze ample time, then check.
	time.Sleep(200 * time.Millisecond)
	if s := frozenState(t, instance, cg); s != "THAWED" {
		t.Errorf("freezer state %s with freezing off", s)
	}
	if st := ts.Worker().Stats(); st.Frozen != 0 {
		t.Errorf("stats %+v with freezing off", st)
	}
}
