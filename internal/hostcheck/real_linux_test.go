package hostcheck

import (
	"context"
	"os"
	"strings"
	"testing"

	cgroups "github.com/containerd/cgroups/v3"

	"github.com/owl-project/owl/internal/testkit"
)

// The real checks on this host: every line has a status and a message,
// warnings and failures say what to do, and on a root host with cgroups
// the cgroup and namespace checks pass and agree with the sandbox's own
// mode detection.
func TestRealHost(t *testing.T) {
	h := RealHost()
	o := Options{DataDir: t.TempDir(), Addr: "127.0.0.1:0", NetworkEgress: true, Prewarm: 1,
		DiskReserveBytes: 128 << 20}
	rep := Run(context.Background(), h, o)
	if len(rep) != 11 {
		t.Errorf("%d results, want 11", len(rep))
	}
	for _, r := range rep {
		t.Logf("%s", r.Line())
		if r.Name == "" || r.Message == "" || r.Status < OK || r.Status > Fail {
			t.Errorf("incomplete result %+v", r)
		}
		if (r.Status == OK) != (r.Fix == "") {
			t.Errorf("%s: status %s with fix %q", r.Name, r.Status, r.Fix)
		}
	}
	if os.Geteuid() != 0 || cgroups.Mode() == cgroups.Unavailable {
		testkit.Skip(t, "the rest needs root and cgroups")
	}
	for _, r := range rep {
		switch r.Name {
		case "cgroups", "namespaces", "root", "data dir", "api port":
			if r.Status == Fail {
				t.Errorf("%s fails on a root host with cgroups: %s", r.Name, r.Line())
			}
		}
	}
	ms, err := h.mounts()
	if err != nil {
		t.Fatal(err)
	}
	mode, _, _ := cgroupModeOf(ms)
	want := map[cgroups.CGMode]cgroupMode{cgroups.Legacy: cgroupV1, cgroups.Hybrid: cgroupHybrid, cgroups.Unified: cgroupV2}[cgroups.Mode()]
	if mode != want {
		t.Errorf("cgroup mode %s, containerd's (the sandbox's) says %v", mode, cgroups.Mode())
	}
}

// TestNoSandboxes: a node that runs none (an api node) is checked for its
// data dir, disk and port only, never for what sandboxes need.
func TestNoSandboxes(t *testing.T) {
	o := Options{DataDir: t.TempDir(), Addr: "127.0.0.1:0", DiskReserveBytes: 128 << 20, NoSandboxes: true}
	var names []string
	for _, r := range Run(context.Background(), RealHost(), o) {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "data dir,disk space,api port" {
		t.Errorf("checks of a node without sandboxes: %s", got)
	}
}
