// Package testkit holds what Owl's tests share: a buffer safe for a child
// process and the test to use at once; polling for a condition with a
// deadline (tests wait with it, never with bare sleeps); the test's Go
// commands built once (Build, CodeDir); loopback listeners and addresses;
// zips; skips that CI turns into failures. An embedded NATS is in its
// subpackage natstest, a name-only registry in fakefns. Only tests import
// them (internal/layering_test.go checks).
package testkit

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writes and reads: a child's
// output or a logger's, read by the test while it is written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset discards everything written so far.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Contains fails t for each of wants that text lacks, showing text;
// what names the text ("log", "table").
func Contains(t testing.TB, what, text string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, text)
		}
	}
}

// Poll calls cond until it returns nil or timeout passes, backing off from
// 1 ms to 100 ms between calls, and returns cond's last error (nil when
// it held).
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// Eventually fails t unless cond returns nil within timeout, with cond's
// last error.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("still not true after %v: %v", timeout, err)
	}
}

// WaitFor fails t unless cond becomes true within timeout; what names the
// condition in the failure.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := Poll(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
	if err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

type notYet struct{}

func (notYet) Error() string { return "not yet" }

var errNotYet error = notYet{}

// NoSkipEnv names the environment variable under which Skip and Skipf fail
// the test instead of skipping it. .ci/run sets it: CI runs as root on a
// host with every tool the tests use installed, so a test that would skip
// there (for want of root, cgroups, nft, an interpreter, a client) is a
// failure, not a silent pass that tests nothing.
const NoSkipEnv = "OWL_TEST_NO_SKIP"

// Skip skips t for want of something on the host (args say what), unless
// NoSkipEnv is set: then it fails t. Skips that depend on the kind of
// host (a cgroup v1 test on a v2 host) use t.Skip.
func Skip(t testing.TB, args ...any) {
	t.Helper()
	if os.Getenv(NoSkipEnv) != "" {
		t.Fatal(append([]any{"would skip (" + NoSkipEnv + " is set):"}, args...)...)
		return
	}
	t.Skip(args...)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(NoSkipEnv) != "" {
		t.Fatalf("would skip ("+NoSkipEnv+" is set): "+format, args...)
		return
	}
	t.Skipf(format, args...)
}
