package worker

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestLogCaptureLimit: past the limit, output is read and dropped (the
// writer never blocks on a full pipe) and take ends with one marker line;
// the next take starts afresh.
func TestLogCaptureLimit(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const limit = 64 << 10
	c, err := newLogCapture(r, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	line := strings.Repeat("x", 99) + "\n"
	chunk := strings.Repeat(line, 640) // 64000 bytes
	done := make(chan error, 1)
	go func() {
		for range 160 { // ~10 MB, far more than the pipe holds
			if _, err := w.WriteString(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the writer blocked: the capture stopped draining")
	}
	lines := c.take()
	if len(lines) == 0 || lines[len(lines)-1] != truncationMarker(limit) {
		t.Fatalf("last line %q, want the marker", lines[len(lines)-1])
	}
	kept := 0
	for _, l := range lines[:len(lines)-1] {
		if l != line[:99] {
			t.Fatalf("kept a damaged line %q", l)
		}
		kept += len(l) + 1
	}
	if kept > limit || kept < limit-len(line) {
		t.Errorf("kept %d bytes, want just under %d", kept, limit)
	}
	if want := "[owl] log output truncated: this invocation wrote more than 65536 bytes"; truncationMarker(limit) != want {
		t.Errorf("marker %q", truncationMarker(limit))
	}

	// The next invocation's output is kept again.
	if _, err := w.WriteString("after\nunterminated"); err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		got = append(got, c.take()...)
		time.Sleep(time.Millisecond)
	}
	if strings.Join(got, "|") != "after|unterminated" {
		t.Errorf("next take: %q", got)
	}
}
