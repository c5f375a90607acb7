package runtimeapi

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// A pre-started runtime's first request gets the function's environment;
// the same listener is then served by a Server as usual.
func TestAwaitSpecialize(t *testing.T) {
	checkGoroutines(t)
	ln := testkit.Listen(t)
	got := make(chan Specialization, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + SpecializePath)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		defer resp.Body.Close()
		var s Specialization
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || resp.StatusCode != 200 {
			t.Errorf("specialize: %d, %v", resp.StatusCode, err)
		}
		got <- s
	}()
	req, err := AwaitSpecialize(testCtx(t), ln)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Answer(Specialization{Env: []string{"A=1", "_HANDLER=x.y"}}); err != nil {
		t.Fatal(err)
	}
	if s := <-got; len(s.Env) != 2 || s.Env[1] != "_HANDLER=x.y" {
		t.Fatalf("runtime got %+v", s)
	}
	srv, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + apiBase + "/invocation/next")
		if err == nil {
			resp.Body.Close()
		}
	}()
	if err := srv.WaitReady(testCtx(t)); err != nil {
		t.Fatalf("WaitReady after specialization: %v", err)
	}
	srv.Close()
	<-done
}

func TestAwaitSpecializeTimeoutAndWrongRequest(t *testing.T) {
	checkGoroutines(t)
	ln := testkit.Listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := AwaitSpecialize(ctx, ln); err == nil {
		t.Fatal("AwaitSpecialize returned without a runtime")
	}
	// The listener still works after the timeout.
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"))
		bufio.NewReader(c).ReadByte()
	}()
	if _, err := AwaitSpecialize(testCtx(t), ln); err == nil {
		t.Fatal("AwaitSpecialize accepted a /next as the first request")
	}
}
