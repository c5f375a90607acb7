package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// baselineReply is the bare server's answer, the size of hello-go's.
var baselineReply = []byte(`{"message":"Hello, owl!","requestId":"00000000-0000-4000-8000-000000000000"}`)

// sleepKey marks an event that asks the function to sleep (hello-go's
// sleep_ms).
var sleepKey = []byte(`"sleep_ms"`)

// bodyBufs hold the start of request bodies, so the bare server reads an
// event without allocating.
var bodyBufs = sync.Pool{New: func() any { return new([512]byte) }}

// BaselineHandler is the bare Go net/http hello server: it reads
// the request body and answers 200 with a small JSON document, whatever the
// path. It is what Owl's latency and throughput are compared with. Like
// hello-go, it first sleeps sleep_ms when the event (its first 512 bytes)
// has one, so a burst of sleeping invocations has a bare baseline too.
func BaselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bodyBufs.Get().(*[512]byte)
		n, _ := io.ReadFull(r.Body, buf[:])
		if n == len(buf) {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		ms := 0
		if bytes.Contains(buf[:n], sleepKey) {
			ms = sleepMS(buf[:n])
		}
		bodyBufs.Put(buf)
		if ms > 0 {
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(baselineReply)
	})
}

// baselineAnnounce prefixes the line a baseline server prints once it
// listens.
const baselineAnnounce = "baseline listening on "

// RunBaselineServer serves BaselineHandler on addr (port 0 picks one) with
// the same server settings as Owl's API, prints "baseline listening on
// http://HOST:PORT" on announce, and serves until ctx ends or stdin reaches
// its end (the parent that started it closed the pipe, or died).
func RunBaselineServer(ctx context.Context, addr string, stdin io.Reader, announce io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("baseline server: %w", err)
	}
	srv := &http.Server{
		Handler:           BaselineHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if stdin != nil {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(announce, "%shttp://%s\n", baselineAnnounce, ln.Addr()); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("baseline server: announcing: %w", err)
	}
	select {
	case err := <-served:
		return fmt.Errorf("baseline server: %w", err)
	case <-ctx.Done():
	}
	_ = srv.Close()
	<-served
	return nil
}

// BaselineServer is a baseline server running in a child process, so that
// it does not share a Go runtime with the load generator (like Owl).
type BaselineServer struct {
	URL string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	done   chan struct{} // closed when the process has been waited for
	err    error         // the process's exit; read after done
}

// StartBaselineServer runs argv, a command that calls RunBaselineServer
// with its stdin and stdout (`owl bench baseline --serve 127.0.0.1:0`), and
// waits until it listens.
func StartBaselineServer(ctx context.Context, argv []string) (*BaselineServer, error) {
	if len(argv) == 0 {
		return nil, errors.New("baseline: no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	b := &BaselineServer{cmd: cmd, stdin: stdin, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the baseline server: %w", err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		b.err = cmd.Wait()
		close(b.done)
	}()
	fail := func(why string) (*BaselineServer, error) {
		b.Close()
		msg := strings.TrimSpace(b.stderr.String())
		if msg != "" {
			why += ": " + msg
		}
		return nil, fmt.Errorf("starting the baseline server (%s): %s", strings.Join(argv, " "), why)
	}
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case line, ok := <-lines:
		u, found := strings.CutPrefix(line, baselineAnnounce)
		if !ok || !found {
			return fail(fmt.Sprintf("it printed %q, not its address", line))
		}
		b.URL = u
		return b, nil
	case <-timer.C:
		return fail("it did not listen within 10s")
	case <-ctx.Done():
		b.Close()
		return nil, ctx.Err()
	}
}

// Close stops the baseline server and waits for its process to exit.
func (b *BaselineServer) Close() error {
	_ = b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	return b.err
}

// Baseline runs mode (ModeWarm, ModeThroughput or ModeBurst) with cfg
// against a bare server started from serveArgv (see StartBaselineServer),
// then stops it. The result's Target is TargetBaseline.
func Baseline(ctx context.Context, cfg Config, mode string, serveArgv []string) (*Result, error) {
	var run func(context.Context, Config) (*Result, error)
	switch mode {
	case ModeWarm:
		run = Warm
	case ModeThroughput:
		run = Throughput
	case ModeBurst:
		run = Burst
		cfg.Fresh = false // the bare server has no configuration to change
	default:
		return nil, fmt.Errorf("baseline mode %q: want warm, throughput or burst", mode)
	}
	srv, err := StartBaselineServer(ctx, serveArgv)
	if err != nil {
		return nil, err
	}
	cfg.Endpoint, cfg.Target = srv.URL, TargetBaseline
	res, err := run(ctx, cfg)
	if cerr := srv.Close(); cerr != nil && err == nil && ctx.Err() == nil {
		err = fmt.Errorf("the baseline server exited: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 64<<10 {
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Exec measures the cold-start floor: N runs of argv (fork, exec, wait),
// after a few untimed ones. A run that fails is an error of the result.
func Exec(ctx context.Context, argv []string, n int) (*Result, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: no command")
	}
	if err := (Config{Requests: n}).Validate(ModeExec); err != nil {
		return nil, err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	run := func() outcome {
		cmd := exec.CommandContext(ctx, path, argv[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		o := outcome{latency: time.Since(start)}
		if err != nil {
			o.fail = &failure{kind: "command failed: " + err.Error(), example: snippet(stderr.Bytes())}
		}
		return o
	}
	r := &Result{
		Mode: ModeExec, Target: TargetBaseline, Command: strings.Join(argv, " "),
		Started: time.Now().UTC(), Host: ThisHost(),
	}
	if err := timeRuns(ctx, r, "exec "+r.Command, 5, n, run); err != nil {
		return nil, err
	}
	return r, nil
}

// timeRuns runs run warmup times untimed (a failure is an error, what
// naming the command), then n times into r, stopping early, with ctx's
// error, when ctx ends.
func timeRuns(ctx context.Context, r *Result, what string, warmup, n int, run func() outcome) error {
	for range warmup {
		if o := run(); o.fail != nil {
			return fmt.Errorf("%s: %s: %s", what, o.fail.kind, o.fail.example)
		}
	}
	r.Warmup = warmup
	t := newTally(n)
	start := time.Now()
	for range n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.add(run(), true)
	}
	r.fill(t, time.Since(start))
	return nil
}
