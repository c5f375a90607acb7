package testkit

import (
	"errors"
	"fmt"
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
