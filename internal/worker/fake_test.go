package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/testkit"
)

// The fake side of the sandbox seam: sandboxes whose "runtime" is a
// goroutine speaking the Runtime API over loopback TCP, and whose output
// is a pipe. No namespaces, cgroups or root.
//
// The fake runtime does what each event's payload says:
//
//	"fail"        posts an error result (errorType Oops)
//	"sleep"       never answers (until the sandbox dies)
//	"exit"        exits with status 2 before answering
//	"oom"         is killed at its memory limit before answering
//	"hold:<ms>"   answers after ms milliseconds
//	anything else answers with the payload, after logging "got <payload>"
//
// and initialises as the function's environment variable FAKE_INIT says:
// "" is ready at once, "error" posts an init error, "exit" exits, "hang"
// never asks for an event, "noentry" is an entrypoint that cannot start.

// fakeSandboxes is the fake Sandboxes.
type fakeSandboxes struct {
	// gate, when set, holds every Create until it is closed; entered gets
	// a value as each Create reaches it.
	gate    chan struct{}
	entered chan struct{}

	mu  sync.Mutex
	all []*fakeSandbox
}

func (f *fakeSandboxes) Create(ctx context.Context, spec sandbox.Spec) (Sandbox, error) {
	if f.gate != nil {
		f.entered <- struct{}{}
		<-f.gate
	}
	init := envValue(spec.Env, "FAKE_INIT")
	if init == "noentry" {
		return nil, fmt.Errorf("%w: exec /var/task/bootstrap: no such file", sandbox.ErrInvalidEntrypoint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &fakeSandbox{spec: spec, ln: ln, outR: r, outW: w, done: make(chan struct{}), peak: 10 << 20}
	s.client = &http.Client{Transport: &http.Transport{DialContext: s.dial}}
	f.mu.Lock()
	f.all = append(f.all, s)
	f.mu.Unlock()
	go s.run(init)
	return s, nil
}

// created is every sandbox made so far.
func (f *fakeSandboxes) created() []*fakeSandbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.all)
}

// live counts the sandboxes not destroyed.
func (f *fakeSandboxes) live() int {
	n := 0
	for _, s := range f.created() {
		if !s.isDestroyed() {
			n++
		}
	}
	return n
}

// gated makes every Create wait for gate (see fakeSandboxes).
func gated(f *fakeSandboxes) {
	f.gate, f.entered = make(chan struct{}), make(chan struct{}, 1)
}

// fakeSandbox is the fake Sandbox.
type fakeSandbox struct {
	spec       sandbox.Spec
	ln         net.Listener
	outR, outW *os.File
	done       chan struct{}
	client     *http.Client

	mu        sync.Mutex // guards the fields below
	conns     []net.Conn // the runtime's connections, closed when it exits
	exitErr   error
	exited    bool
	oom       bool
	peak      uint64
	frozen    bool
	freezes   int
	thaws     int
	thawErr   error
	destroyed bool
	events    int  // events the runtime took
	asked     bool // the runtime asked for its first event
	// cpuLimited: LimitCPU was called; limitedEarly: before the runtime
	// asked for its first event.
	cpuLimited, limitedEarly bool
}

func (s *fakeSandbox) ID() string             { return s.spec.ID }
func (s *fakeSandbox) Listener() net.Listener { return s.ln }
func (s *fakeSandbox) Output() *os.File       { return s.outR }
func (s *fakeSandbox) Done() <-chan struct{}  { return s.done }

// locked runs f under s.mu.
func (s *fakeSandbox) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *fakeSandbox) ExitError() (err error) { s.locked(func() { err = s.exitErr }); return err }
func (s *fakeSandbox) OOMKilled() (oom bool)  { s.locked(func() { oom = s.oom }); return oom }
func (s *fakeSandbox) isDestroyed() (d bool)  { s.locked(func() { d = s.destroyed }); return d }
func (s *fakeSandbox) isFrozen() (f bool)     { s.locked(func() { f = s.frozen }); return f }
func (s *fakeSandbox) hasExited() (x bool)    { s.locked(func() { x = s.exited }); return x }
func (s *fakeSandbox) eventsTaken() (n int)   { s.locked(func() { n = s.events }); return n }

func (s *fakeSandbox) MaxMemoryBytes() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return 0, sandbox.ErrDestroyed
	}
	return s.peak, nil
}

func (s *fakeSandbox) LimitCPU() error {
	s.locked(func() { s.cpuLimited, s.limitedEarly = true, !s.asked })
	return nil
}

func (s *fakeSandbox) Freeze() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.destroyed {
		return sandbox.ErrDestroyed
	}
	s.frozen = true
	s.freezes++
	return nil
}

func (s *fakeSandbox) Thaw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.thawErr != nil {
		return s.thawErr
	}
	s.frozen = false
	s.thaws++
	return nil
}

func (s *fakeSandbox) Specialize(sandbox.Specialization) error {
	return errors.New("the fake sandboxes are never pre-warmed")
}

func (s *fakeSandbox) Destroy() error {
	s.mu.Lock()
	s.destroyed = true
	s.mu.Unlock()
	s.ln.Close()
	s.exit(errors.New("signal: killed"), false)
	return nil
}

// dial connects the runtime to its Runtime API, keeping the connection to
// close when the runtime exits (as a process's sockets are).
func (s *fakeSandbox) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited {
		c.Close()
		return nil, errors.New("the runtime exited")
	}
	s.conns = append(s.conns, c)
	return c, nil
}

// exit ends the runtime: its connections and output close and Done fires.
func (s *fakeSandbox) exit(err error, oom bool) {
	s.mu.Lock()
	if s.exited {
		s.mu.Unlock()
		return
	}
	s.exited, s.exitErr, s.oom = true, err, oom
	if oom {
		s.peak = uint64(s.spec.MemoryMB) << 20
	}
	conns := s.conns
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	s.outW.Close()
	close(s.done)
}

const fakeAPI = "http://runtime/2018-06-01/runtime/"

// run is the fake runtime.
func (s *fakeSandbox) run(init string) {
	switch init {
	case "error":
		s.post("init/error", `{"errorMessage":"no handler","errorType":"Runtime.HandlerNotFound"}`)
		<-s.done
		return
	case "exit":
		fmt.Fprintln(s.outW, "dying at init")
		s.exit(errors.New("exit status 3"), false)
		return
	case "hang":
		<-s.done
		return
	}
	fmt.Fprintln(s.outW, "init done")
	s.locked(func() { s.asked = true })
	for {
		resp, err := s.client.Get(fakeAPI + "invocation/next")
		if err != nil {
			return // the sandbox died or was destroyed
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if !s.handle(id, string(body)) {
			return
		}
	}
}

// handle acts on one event; false when the runtime is gone.
func (s *fakeSandbox) handle(id, payload string) bool {
	s.locked(func() { s.events++ })
	switch {
	case payload == "fail":
		s.post("invocation/"+id+"/error", `{"errorMessage":"it failed","errorType":"Oops"}`)
	case payload == "sleep":
		<-s.done
		return false
	case payload == "exit":
		s.exit(errors.New("exit status 2"), false)
		return false
	case payload == "oom":
		s.exit(errors.New("signal: killed"), true)
		return false
	case strings.HasPrefix(payload, "hold:"):
		ms, _ := strconv.Atoi(strings.TrimPrefix(payload, "hold:"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-s.done:
			return false
		}
		s.post("invocation/"+id+"/response", `"held"`)
	default:
		fmt.Fprintln(s.outW, "got", payload)
		s.post("invocation/"+id+"/response", payload)
	}
	return !s.hasExited()
}

func (s *fakeSandbox) post(path, body string) {
	resp, err := s.client.Post(fakeAPI+path, "application/json", strings.NewReader(body))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// fakeCode is a CodeSource whose every code is the same zip.
type fakeCode struct{ zip []byte }

func (c fakeCode) Code(context.Context, string) ([]byte, error) { return c.zip, nil }

// newTestWorker is a worker on fake sandboxes, closed when the test ends;
// cfg's zero fields get test defaults, and opts change the fake.
func newTestWorker(t *testing.T, cfg Config, opts ...func(*fakeSandboxes)) (*Worker, *fakeSandboxes) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Region == "" {
		cfg.Region, cfg.AccountID = "eu-west-1", "000000000000"
	}
	if cfg.ConcurrencyLimit == 0 {
		cfg.ConcurrencyLimit = 100
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	sbs := &fakeSandboxes{}
	for _, o := range opts {
		o(sbs)
	}
	w := New(cfg, fakeCode{testkit.Zip(t, map[string]string{"bootstrap": "#!/bin/sh\n"})}, nil, sbs)
	t.Cleanup(func() {
		w.Close()
		if n := sbs.live(); n != 0 {
			t.Errorf("%d sandboxes left after Close", n)
		}
	})
	return w, sbs
}

// testWriter logs through t (and drops what comes after the test ended).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testFunction is a function of the provided runtime, with env as its
// environment.
func testFunction(name string, env map[string]string) registry.Function {
	return registry.Function{
		Name: name, Runtime: "provided.al2023", Handler: "bootstrap", MemorySize: 128, Timeout: 1,
		EphemeralStorage: 512, Environment: env, RevisionID: "rev-1", Version: registry.Latest,
		CodeSha256Hex: "c0de000000000000000000000000000000000000000000000000000000000000",
	}
}

// eventually fails t unless cond becomes true within 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, what, cond)
}
