package cluster

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// testNode is a node of the test's cluster: its membership, its placer
// and what it advertises.
type testNode struct {
	m *Membership
	p *Placer
}

// joinNode joins a node named name to bus; a worker runs invocations by
// answering its own name.
func joinNode(t *testing.T, bus *natsbus.Bus, name, role string, runtimes []string, state func(*lambdawire.Node)) *testNode {
	t.Helper()
	return joinNodeLogging(t, bus, name, role, runtimes, state, slog.New(slog.DiscardHandler))
}

// joinNodeLogging is joinNode with the node's membership logging to logger.
func joinNodeLogging(t *testing.T, bus *natsbus.Bus, name, role string, runtimes []string, state func(*lambdawire.Node), logger *slog.Logger) *testNode {
	t.Helper()
	self := Self{Name: name, Role: role, Version: "test", Runtimes: runtimes, State: state}
	m, err := Join(context.Background(), bus.JS, bus.NC, self, logger)
	if err != nil {
		t.Fatal(err)
	}
	var local Runner
	if role != "api" {
		local = func(_ context.Context, req Request) (*Result, error) {
			if req.Function.Name == "full-on-"+name {
				return nil, lambdaerr.New(lambdaerr.TooManyRequests, "Rate Exceeded. %s has no memory.", name)
			}
			return &Result{Payload: append([]byte(name+":"), req.Payload...)}, nil
		}
	}
	p, err := NewPlacer(m, bus.NC, local, runtimes, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	n := &testNode{m: m, p: p}
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	if n.p != nil {
		n.p.Close()
		n.m.Leave()
		n.p = nil
	}
}

func free(mb int, warm map[string]int) func(*lambdawire.Node) {
	return func(n *lambdawire.Node) {
		n.MemoryMB, n.MemoryFreeMB = 4096, mb
		n.Environments = map[string]map[string]int{}
		for k, v := range warm {
			n.Environments[k] = map[string]int{"idle": v}
		}
	}
}

// ranOn invokes fn through p and returns the name of the node that ran it.
func ranOn(t *testing.T, p *Placer, fn registry.Function) string {
	t.Helper()
	res, err := p.Invoke(context.Background(), Request{Function: fn, RequestID: "r", Payload: []byte("x")})
	if err != nil {
		t.Fatalf("invoking %s: %v", fn.Name, err)
	}
	name, _, _ := strings.Cut(string(res.Payload), ":")
	return name
}

// TestPlacement: a warm environment first, then the most free memory;
// never a node without the runtime, a draining one, an incompatible one
// or one that stopped taking invocations.
func TestPlacement(t *testing.T) {
	bus := natstest.Start(t)
	prov := []string{"provided.al2023"}
	apiLog := &testkit.Buffer{}
	api := joinNodeLogging(t, bus, "api", "api", nil, nil, slog.New(slog.NewTextHandler(apiLog, nil)))
	roomy := joinNode(t, bus, "roomy", "worker", prov, free(3000, nil))
	warm := joinNode(t, bus, "warm", "worker", append(prov, "python3.12"), free(1000, map[string]int{"f:$LATEST": 1}))

	// A record of an older Owl with every resource: refused.
	old, _ := json.Marshal(lambdawire.Node{Name: "old", ID: "old1", Role: "worker", Protocol: Protocol - 1,
		Runtimes: append(prov, "python3.12"), MemoryMB: 1 << 20, MemoryFreeMB: 1 << 20})
	if _, err := api.m.kv.Put(context.Background(), "old", old); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the api node to see every node", func() bool {
		return len(api.m.Nodes()) == 4 && len(api.m.usable()) == 2
	})
	if h := health(api.m, "old"); h != HealthIncompatible {
		t.Errorf("the older node's health: %q", h)
	}
	if log := apiLog.String(); !strings.Contains(log, `msg="refusing a node of an incompatible Owl version: it is never placed on" node=old`) ||
		strings.Count(log, "refusing a node") != 1 {
		t.Errorf("the refusal of the older node is not logged once:\n%s", log)
	}

	f := registry.Function{Name: "f", Runtime: "provided.al2023", MemorySize: 128, Timeout: 3}
	g := registry.Function{Name: "g", Runtime: "provided.al2023", MemorySize: 128, Timeout: 3}
	py := registry.Function{Name: "py", Runtime: "python3.12", MemorySize: 128, Timeout: 3}
	if got := ranOn(t, api.p, f); got != "warm" {
		t.Errorf("f (warm on node warm) ran on %s", got)
	}
	if got := ranOn(t, api.p, g); got != "roomy" {
		t.Errorf("g (warm nowhere) ran on %s, not on the node with the most free memory", got)
	}
	if got := ranOn(t, api.p, py); got != "warm" {
		t.Errorf("py ran on %s, the only node with its runtime is warm", got)
	}
	// A node without capacity (429) did not run it: the next one does,
	// and the refusal stands once none is left.
	if got := ranOn(t, api.p, registry.Function{Name: "full-on-roomy", Runtime: "provided.al2023", MemorySize: 128, Timeout: 3}); got != "warm" {
		t.Errorf("a function roomy refuses ran on %s", got)
	}
	_, err := api.p.Invoke(context.Background(), Request{Function: registry.Function{Name: "full-on-warm", Runtime: "python3.12", MemorySize: 128, Timeout: 3}})
	if !lambdaerr.Is(err, lambdaerr.TooManyRequests) || !strings.Contains(err.Error(), "warm has no memory") {
		t.Errorf("a function its only node refuses: %v", err)
	}
	// A worker runs what is best placed on itself.
	if got := ranOn(t, warm.p, f); got != "warm" {
		t.Errorf("f placed from node warm ran on %s", got)
	}

	// Draining warm: f goes to roomy, py has nowhere to go.
	ctx := context.Background()
	if err := api.m.Drain(ctx, "warm", true); err != nil {
		t.Fatal(err)
	}
	if got := ranOn(t, api.p, f); got != "roomy" {
		t.Errorf("f with warm draining ran on %s", got)
	}
	_, err = api.p.Invoke(ctx, Request{Function: py, RequestID: "r"})
	if !lambdaerr.Is(err, lambdaerr.ServiceUnavailable) || !strings.Contains(err.Error(), "roomy lack runtime python3.12") {
		t.Errorf("py with its only node draining: %v", err)
	}
	if err := api.m.Drain(ctx, "warm", false); err != nil {
		t.Fatal(err)
	}
	if err := api.m.Drain(ctx, "nosuch", true); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Errorf("draining a node that does not exist: %v", err)
	}

	// roomy stops taking invocations but still advertises itself: NATS
	// has no responder, so g goes to warm instead, and roomy is lost.
	_ = roomy.p.sub.Unsubscribe()
	if got := ranOn(t, api.p, g); got != "warm" {
		t.Errorf("g with roomy not answering ran on %s", got)
	}
	if h := health(api.m, "roomy"); h != HealthLost {
		t.Errorf("roomy's health after no responder: %q", h)
	}

	// A node whose own checks fail (its disk below the reserve) is
	// unhealthy and not placed on.
	sick := joinNode(t, bus, "sick", "worker", prov, func(n *lambdawire.Node) {
		free(1<<20, map[string]int{"f:$LATEST": 9})(n)
		n.Problems = []string{"disk"}
	})
	testkit.WaitFor(t, 10*time.Second, "the api node to see sick", func() bool { return health(api.m, "sick") == HealthUnhealthy })
	if got := ranOn(t, api.p, f); got == "sick" {
		t.Error("f ran on the unhealthy node")
	}
	sick.stop()

	st := api.p.Stats()
	if st["local"] != 0 || st["forwarded"] == 0 || st["redirected"] < 2 || st["no_node"] < 1 {
		t.Errorf("the api node's placement counts: %v", st)
	}

	// A node that leaves is gone at once.
	warm.stop()
	testkit.WaitFor(t, 10*time.Second, "warm to be gone", func() bool { return health(api.m, "warm") == "" })
}

func health(m *Membership, name string) string {
	for _, n := range m.Nodes() {
		if n.Name == name {
			return n.Health
		}
	}
	return ""
}

// TestNameInUse: a second node of a live node's name is refused.
func TestNameInUse(t *testing.T) {
	bus := natstest.Start(t)
	joinNode(t, bus, "same", "worker", nil, free(100, nil))
	_, err := Join(context.Background(), bus.JS, bus.NC, Self{Name: "same", Role: "worker"}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `node name "same" is in use by a live node`) {
		t.Fatalf("joining with a live node's name: %v", err)
	}
}

// TestFrame: a message between nodes keeps its head and its payload.
func TestFrame(t *testing.T) {
	payload := []byte{0, 1, 2, 255}
	b, err := frame(Request{RequestID: "id"}, payload)
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	p, err := unframe(b, &got)
	if err != nil || got.RequestID != "id" || string(p) != string(payload) {
		t.Fatalf("unframe: %v %+v %v", err, got, p)
	}
	for _, bad := range [][]byte{nil, {0, 0}, {0, 0, 0, 9, '{'}, {0, 0, 0, 1, 'x'}} {
		if _, err := unframe(bad, &got); err == nil {
			t.Errorf("unframe(%v) took it", bad)
		}
	}
}

// TestJoinSeesItself: once Join returns, the node's own record is in its
// view, so its first invocation is placed.
func TestJoinSeesItself(t *testing.T) {
	bus := natstest.Start(t)
	n := joinNode(t, bus, "only", "all", []string{"provided.al2023"}, free(1000, nil))
	if got := ranOn(t, n.p, registry.Function{Name: "f", Runtime: "provided.al2023", MemorySize: 128, Timeout: 3}); got != "only" {
		t.Errorf("ran on %q", got)
	}
}

// A provisioned total is split over the workers so that the parts add up
// to it whatever the order the nodes are listed in, differ by one at most,
// and the remainders of different functions fall on different nodes.
func TestShareOf(t *testing.T) {
	nodes := []string{"w3", "w1", "w2"}
	carriers := map[string]int{}
	for _, total := range []int{0, 1, 2, 3, 4, 7, 100} {
		for _, key := range []string{"a:1", "b:$LATEST", "c:2", "d:9"} {
			sum, lo, hi := 0, total, 0
			for _, self := range nodes {
				n := shareOf(total, append([]string(nil), nodes...), self, key)
				sum += n
				lo, hi = min(lo, n), max(hi, n)
				if total == 1 && n == 1 {
					carriers[self]++
				}
			}
			if sum != total || hi-lo > 1 {
				t.Errorf("total %d for %s split %d..%d summing to %d", total, key, lo, hi, sum)
			}
		}
	}
	if len(carriers) < 2 {
		t.Errorf("every function's single provisioned environment fell on %v", carriers)
	}
	if n := shareOf(5, []string{"w1", "w2"}, "api1", "a:1"); n != 0 {
		t.Errorf("a node outside the split keeps %d", n)
	}
}
