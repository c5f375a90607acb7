package worker

import (
	"os"
	"slices"
	"strings"
	"sync"
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
	lines, _ := c.take()
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
		lines, _ := c.take()
		got = append(got, lines...)
		time.Sleep(time.Millisecond)
	}
	if strings.Join(got, "|") != "after|unterminated" {
		t.Errorf("next take: %q", got)
	}
}

// TestLogCaptureStream: between stream and take, the sink gets the lines
// kept before stream at once, then each complete line as it is read —
// before take, which returns every line and, as unsent, only what the
// sink did not get (an unterminated last line). After take the sink gets
// nothing more.
func TestLogCaptureStream(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, err := newLogCapture(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()

	var mu sync.Mutex
	var streamed []string
	received := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(streamed)
	}
	waitFor := func(want ...string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if slices.Equal(received(), want) {
				return
			}
		}
		t.Fatalf("streamed %q, want %q", received(), want)
	}
	if _, err := w.WriteString("before\n"); err != nil {
		t.Fatal(err)
	}
	c.stream(func(lines []string) {
		mu.Lock()
		streamed = append(streamed, lines...)
		mu.Unlock()
	})
	waitFor("before")
	if _, err := w.WriteString("one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	waitFor("before", "one", "two")
	if _, err := w.WriteString("partial"); err != nil {
		t.Fatal(err)
	}
	lines, unsent := c.take()
	if !slices.Equal(lines, []string{"before", "one", "two", "partial"}) || !slices.Equal(unsent, []string{"partial"}) {
		t.Errorf("take = %q, unsent %q", lines, unsent)
	}
	if _, err := w.WriteString("later\n"); err != nil {
		t.Fatal(err)
	}
	lines, unsent = c.take()
	if !slices.Equal(lines, []string{"later"}) || !slices.Equal(unsent, lines) {
		t.Errorf("after the stream: take = %q, unsent %q", lines, unsent)
	}
	if got := received(); len(got) != 3 {
		t.Errorf("the sink got lines after take: %q", got)
	}
}

// TestLogCaptureExtensionLines: lines the extension launcher marked are
// kept without their marker and reported as the extensions', in order;
// the next take starts afresh.
func TestLogCaptureExtensionLines(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c, err := newLogCapture(r, DefaultLogLimitBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, err := w.WriteString("fn 1\n\x1eext 1\nfn 2\n\x1eext 2\n\x1e\n"); err != nil {
		t.Fatal(err)
	}
	lines, unsent, ext := c.takeSplit()
	if want := []string{"fn 1", "ext 1", "fn 2", "ext 2", ""}; !slices.Equal(lines, want) || !slices.Equal(unsent, want) {
		t.Fatalf("lines %q, unsent %q; want %q", lines, unsent, want)
	}
	if want := []string{"ext 1", "ext 2", ""}; !slices.Equal(ext, want) {
		t.Fatalf("extension lines %q, want %q", ext, want)
	}
	if _, err := w.WriteString("fn 3\n"); err != nil {
		t.Fatal(err)
	}
	if lines, _, ext := c.takeSplit(); !slices.Equal(lines, []string{"fn 3"}) || len(ext) != 0 {
		t.Fatalf("second take: %q, extension lines %q", lines, ext)
	}
}
