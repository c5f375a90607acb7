package bench

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// envBaselineChild makes the test binary act as the baseline server's
// child process (what `owl bench baseline --serve` does).
const envBaselineChild = "OWL_BENCH_TEST_BASELINE_CHILD"

func TestMain(m *testing.M) {
	if d, err := time.ParseDuration(os.Getenv(envBurnChild)); err == nil {
		burnChild(d)
		os.Exit(0)
	}
	if os.Getenv(envBaselineChild) == "1" {
		if err := RunBaselineServer(context.Background(), "127.0.0.1:0", os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestBaselineHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, InvokePath("anything"), strings.NewReader(`{"name":"owl"}`))
	BaselineHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
		!strings.HasPrefix(rec.Body.String(), `{"message":"Hello, owl!"`) {
		t.Errorf("baseline answered %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	// The request body is read: a client that sent it is never blocked.
	if n, _ := req.Body.Read(make([]byte, 1)); n != 0 {
		t.Error("the handler left the request body unread")
	}
}

func TestRunBaselineServer(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- RunBaselineServer(context.Background(), "127.0.0.1:0", stdinR, outW) }()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), baselineAnnounce)
	if !ok {
		t.Fatalf("announced %q", line)
	}
	resp, err := http.Post(url+InvokePath("hello"), "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	// The parent closing stdin stops the server.
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunBaselineServer = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not stop when stdin closed")
	}
}

func TestStartBaselineServer(t *testing.T) {
	t.Setenv(envBaselineChild, "1")
	b, err := StartBaselineServer(context.Background(), []string{os.Args[0]})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Endpoint, cfg.Target, cfg.Requests, cfg.Warmup = b.URL, TargetBaseline, 200, 10
	r, err := Warm(context.Background(), cfg)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	if r.OK != 200 || r.Errors != 0 || r.Target != TargetBaseline {
		t.Errorf("baseline warm: %+v", r)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close = %v, want a clean exit", err)
	}
	if b.cmd.ProcessState == nil || !b.cmd.ProcessState.Exited() {
		t.Error("the baseline process is still running after Close")
	}
}

func TestBaseline(t *testing.T) {
	t.Setenv(envBaselineChild, "1")
	cfg := DefaultConfig()
	cfg.Requests, cfg.Warmup, cfg.Connections, cfg.Duration = 100, 0, 2, 100*time.Millisecond
	for _, mode := range []string{ModeWarm, ModeThroughput} {
		r, err := Baseline(context.Background(), cfg, mode, []string{os.Args[0]})
		if err != nil {
			t.Fatalf("Baseline(%s) = %v", mode, err)
		}
		if r.Mode != mode || r.Target != TargetBaseline || r.OK == 0 || r.Errors != 0 || !strings.HasPrefix(r.Endpoint, "http://127.0.0.1:") {
			t.Errorf("Baseline(%s) = %+v", mode, r)
		}
	}
	if _, err := Baseline(context.Background(), cfg, ModeCold, []string{os.Args[0]}); err == nil {
		t.Error("Baseline(cold) succeeded")
	}
}

func TestStartBaselineServerFailures(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"says something else", []string{"sh", "-c", "echo hello; cat"}, `printed "hello"`},
		{"exits at once", []string{"sh", "-c", "echo boom >&2; exit 3"}, "boom"},
		{"no such program", []string{"/nonexistent/owl"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := StartBaselineServer(context.Background(), tt.argv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("StartBaselineServer(%q) = %v, want an error with %q", tt.argv, err, tt.want)
			}
			// Failing must not mean waiting out the 10 s listen timeout;
			// anything shorter holds on a loaded machine.
			if d := time.Since(start); d > 9*time.Second {
				t.Errorf("took %v to fail (the listen timeout is 10 s)", d)
			}
		})
	}
}

func TestExec(t *testing.T) {
	r, err := Exec(context.Background(), []string{"true"}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mode != ModeExec || r.Target != TargetBaseline || r.Command != "true" || r.OK != 20 || r.Latency.Count != 20 || r.Warmup != 5 {
		t.Errorf("Exec(true) = %+v", r)
	}
	if _, err := Exec(context.Background(), []string{"false"}, 20); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("Exec(false) = %v", err)
	}
	if _, err := Exec(context.Background(), []string{"/nonexistent/cmd"}, 20); err == nil {
		t.Error("Exec of a missing command succeeded")
	}
	if _, err := Exec(context.Background(), nil, 20); err == nil {
		t.Error("Exec without a command succeeded")
	}
}

func TestBaselineHandlerSleeps(t *testing.T) {
	// An event with sleep_ms holds the answer until then, or until the
	// client goes away; nothing is written for a request that went away.
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, InvokePath("x"), strings.NewReader(`{"name":"owl","sleep_ms":600000}`))
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		BaselineHandler().ServeHTTP(rec, req)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("the handler answered an event with sleep_ms 600000 at once")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	<-done
	if rec.Body.Len() != 0 {
		t.Errorf("answered %q to a request that went away", rec.Body.String())
	}
	// A large event without sleep_ms is read to its end and answered.
	big := `{"name":"` + strings.Repeat("o", 2000) + `"}`
	rec = httptest.NewRecorder()
	req = httptest.NewRequest(http.MethodPost, InvokePath("x"), strings.NewReader(big))
	BaselineHandler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), `{"message"`) {
		t.Errorf("big event: %d %q", rec.Code, rec.Body.String())
	}
	if n, _ := req.Body.Read(make([]byte, 1)); n != 0 {
		t.Error("the handler left the rest of a big event unread")
	}
}

// TestBaselineBurst runs a burst against the bare server in a child
// process, as `owl bench baseline --mode burst` does, with a short sleep.
func TestBaselineBurst(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(envBaselineChild, "1")
	cfg := DefaultConfig()
	cfg.Requests, cfg.Connections, cfg.Payload, cfg.Fresh = 50, 50, []byte(`{"sleep_ms":200}`), true
	r, err := Baseline(context.Background(), cfg, ModeBurst, []string{exe})
	if err != nil {
		t.Fatal(err)
	}
	if r.Target != TargetBaseline || r.Mode != ModeBurst || r.OK != 50 || r.Errors != 0 || r.Burst == nil ||
		r.Burst.Fresh || r.Burst.NoLog != 50 || r.Burst.SleepMS != 200 || r.Burst.Dials != 50 {
		t.Errorf("baseline burst = %+v, stats %+v", r, r.Burst)
	}
}
