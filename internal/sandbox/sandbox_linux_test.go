package sandbox

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// Facts mirrors testdata/probe.
type Facts struct {
	UID, GID, EUID, EGID int
	Groups               []int
	Pid, PPid            int
	Hostname             string
	Cwd                  string
	Env                  []string
	Procs                []int
	WriteErrs            map[string]string
	TmpBytes             uint64
	Interfaces           []string
	LoUp                 bool
	HostDial             string
	DevNull              string
	Urandom              string
	FDs                  []string
	CapEff               string
	RootEntries          []string
	Mountpoints          []string
}

func TestSmoke(t *testing.T) {
	m := newTestManager(t)
	code := probeCodeDir(t)
	start := time.Now()
	sb := create(t, m, testSpec(t, code, "facts"))
	t.Logf("created in %v", time.Since(start))
	out := readOutput(t, sb)
	waitDone(t, sb)
	t.Logf("exit: %v", sb.ExitError())
	var f Facts
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	b, _ := json.MarshalIndent(f, "", "  ")
	t.Logf("%s", b)
	_ = context.Background
}
