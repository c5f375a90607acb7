package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/owl-project/owl/internal/client"
	"github.com/owl-project/owl/internal/testkit"
)

// openPty returns a pseudo-terminal's master and slave.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pty: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pty's number: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pty's slave: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader:
// testkit's, under the name these tests use.
type lockedBuffer = testkit.Buffer

// TestTopLive: on a terminal, owl top draws on the alternate screen, takes
// single keys (e sorts by errors, q quits) and leaves the terminal's
// settings and screen as it found them.
func TestTopLive(t *testing.T) {
	url, _ := topServer(t)
	master, slave := openPty(t)
	before, err := unix.IoctlGetTermios(int(slave.Fd()), ioctlGetTermios)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			_, _ = out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()

	v, _, err := newTopView(client.New(url, testToken), topOptions{interval: time.Hour, sort: "invocations"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- v.runLive(context.Background(), slave, slave) }()
	waitOutput(t, out, "waiting 1h0m0s for a second scrape") // drawn once in single-key mode
	if _, err := master.Write([]byte("e")); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "sorted by errors")
	if _, err := master.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("runLive: %v", err)
	}
	after, err := unix.IoctlGetTermios(int(slave.Fd()), ioctlGetTermios)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("the terminal's settings changed:\n before %+v\n after  %+v", *before, *after)
	}
	waitOutput(t, out, "\x1b[?25h\x1b[?1049l") // the cursor and the normal screen back
	slave.Close()
	master.Close()
	<-copied
	if s := out.String(); !strings.HasPrefix(s, "\x1b[?1049h\x1b[?25l") || !strings.HasSuffix(s, "\x1b[?25h\x1b[?1049l") {
		t.Errorf("not drawn on the alternate screen:\n%q", s)
	}
}

// waitOutput waits until out holds want.
func waitOutput(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q on the terminal after a minute:\n%q", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
