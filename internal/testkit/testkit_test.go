package testkit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "%d", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("%d bytes written, want 800", n)
	}
	b.Reset()
	if b.String() != "" {
		t.Error("Reset left bytes")
	}
}

func TestPoll(t *testing.T) {
	calls := 0
	if err := Poll(time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("no")
		}
		return nil
	}); err != nil || calls != 3 {
		t.Errorf("Poll: %v after %d calls, want nil after 3", err, calls)
	}
	want := errors.New("never")
	if err := Poll(20*time.Millisecond, func() error { return want }); err != want {
		t.Errorf("Poll of a condition that never holds: %v, want its last error", err)
	}
}

// recorder is a testing.TB that records Fatal and Skip instead of acting.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatal(args ...any)            { r.failed = fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, args ...any) { r.failed = fmt.Sprintf(f, args...) }
func (r *recorder) Skip(args ...any)             { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skipped = fmt.Sprintf(f, args...) }

func TestSkip(t *testing.T) {
	t.Setenv(NoSkipEnv, "")
	r := &recorder{TB: t}
	Skip(r, "no nft")
	if r.skipped != "no nft" || r.failed != "" {
		t.Errorf("without %s: skipped %q, failed %q", NoSkipEnv, r.skipped, r.failed)
	}
	t.Setenv(NoSkipEnv, "1")
	r = &recorder{TB: t}
	Skipf(r, "no %s", "python3")
	if r.skipped != "" || !strings.Contains(r.failed, "no python3") {
		t.Errorf("with %s: skipped %q, failed %q", NoSkipEnv, r.skipped, r.failed)
	}
}

// Build builds a command once, however often and from however many tests
// it is asked for.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	const pkg = "./testdata/nop"
	first, err := Build(pkg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(first)
	if err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("Build(%s) = %s: not an executable (%v)", pkg, first, err)
	}
	if again, err := Build(pkg); again != first || err != nil {
		t.Errorf("Build again = %s, %v; want %s, built once", again, err, first)
	}
	if _, err := Build("./testdata/missing"); err == nil {
		t.Error("Build of a missing package: no error")
	}
	RemoveBuilds()
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("after RemoveBuilds, %s: %v", first, err)
	}
}

// Listen accepts connections; FreeAddr's address refuses them.
func TestListenAndFreeAddr(t *testing.T) {
	ln := Listen(t)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dialing Listen's listener: %v", err)
	}
	c.Close()
	if c, err := net.Dial("tcp", FreeAddr(t)); err == nil {
		c.Close()
		t.Errorf("FreeAddr's address accepted a connection")
	}
}
