package main

import (
	"slices"
	"testing"
	"time"
)

// TestTestRun checks the test binary's flags: the table's filters, the TCG
// ones under TCG, and the caller's flags last, so they win (a benchmark
// instead of the tests).
func TestTestRun(t *testing.T) {
	gt := guestTest{pkg: "internal/server", run: "^TestA$", tcgRun: "^TestB$", tcgSkip: "^TestC$", parallel: 1, timeout: 20 * time.Minute}
	bench := []string{"-test.run", "^$", "-test.bench", "OOMKill", "-test.benchtime", "5x"}
	for _, c := range []struct {
		name  string
		tcg   bool
		extra []string
		want  []string
	}{
		{"kvm", false, nil,
			[]string{"-test.count=1", "-test.v", "-test.timeout=20m0s", "-test.run=^TestA$", "-test.parallel=1"}},
		{"tcg", true, nil,
			[]string{"-test.count=1", "-test.v", "-test.timeout=20m0s", "-test.run=^TestB$", "-test.skip=^TestC$", "-test.parallel=1"}},
		{"tcg bench", true, bench,
			append([]string{"-test.count=1", "-test.v", "-test.timeout=20m0s", "-test.run=^TestB$", "-test.skip=^TestC$", "-test.parallel=1"}, bench...)},
	} {
		r := testRun(gt, "/src", "/scratch/bin", c.tcg, c.extra)
		if !slices.Equal(r.Args, c.want) {
			t.Errorf("%s: args %q, want %q", c.name, r.Args, c.want)
		}
		if r.Binary != "/scratch/bin/server.test" || r.Dir != "/src/internal/server" || r.TimeoutSeconds != 22*60 {
			t.Errorf("%s: binary %s in %s, timeout %ds", c.name, r.Binary, r.Dir, r.TimeoutSeconds)
		}
	}
}

// TestSelectTests checks the package filter and that a binary given the
// caller's flags gets the whole run's timeout, not the table's budget for
// its tests.
func TestSelectTests(t *testing.T) {
	tests := selectTests("sandbox", nil, 90*time.Minute)
	if len(tests) != 1 || tests[0].pkg != "internal/sandbox" || tests[0].timeout != guestTests[0].timeout {
		t.Fatalf("-run sandbox: %+v", tests)
	}
	if all := selectTests("", nil, 90*time.Minute); len(all) != len(guestTests) {
		t.Errorf("no -run: %d test binaries, want %d", len(all), len(guestTests))
	}
	tests = selectTests("sandbox", []string{"-test.bench", "OOMKill"}, 90*time.Minute)
	if len(tests) != 1 || tests[0].timeout != 90*time.Minute {
		t.Errorf("-run sandbox with test flags: %+v, want the run's 90m timeout", tests)
	}
	if guestTests[0].timeout != 10*time.Minute {
		t.Errorf("selectTests changed the table: %+v", guestTests[0])
	}
}

func TestGuestCPUs(t *testing.T) {
	if guestCPUs(0, true) != 2 || guestCPUs(0, false) != 1 || guestCPUs(4, false) != 4 {
		t.Errorf("guestCPUs: kvm %d, tcg %d, asked 4 under tcg %d", guestCPUs(0, true), guestCPUs(0, false), guestCPUs(4, false))
	}
}
