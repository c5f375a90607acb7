package server_test

// A cluster on one machine: three nats-server processes clustered on
// loopback, then owl serve processes joining them with --nats: an api
// node and two workers. Placement, drain, runtimes per node, a worker
// killed under load, and its return.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/testkit"
)

const natsTestPassword = "owl-nats-test-password-0123456789"

// natsCluster is nats-server processes clustered on loopback ports,
// JetStream on, clients authenticated as user owl.
type natsCluster struct {
	urls  []string
	procs []*exec.Cmd
}

// URL is every server's client URL, comma-separated, as --nats takes it.
func (c *natsCluster) URL() string { return strings.Join(c.urls, ",") }

// startNATSCluster starts n nats-server processes (the module's own
// command, built once) clustered with each other (one: alone), clients
// authenticated as user owl, and waits until each one's JetStream
// answers. They are stopped when the test ends.
func startNATSCluster(t testing.TB, n int) *natsCluster {
	t.Helper()
	return startNATS(t, n, fmt.Sprintf("authorization { user: owl, password: %q }\n", natsTestPassword), nats.UserInfo("owl", natsTestPassword))
}

// startNATS is startNATSCluster with the configuration of the clients'
// authentication and TLS (auth) and the options that connect with it.
func startNATS(t testing.TB, n int, auth string, connect ...nats.Option) *natsCluster {
	t.Helper()
	bin, err := testkit.Build("github.com/nats-io/nats-server/v2")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &natsCluster{}
	var clients, routes []string
	for range n {
		clients = append(clients, testkit.FreeAddr(t))
		routes = append(routes, "nats://"+testkit.FreeAddr(t))
	}
	for i := range n {
		conf := fmt.Sprintf(`server_name: n%d
listen: %s
max_payload: 8MB
jetstream { store_dir: %q }
%s`, i, clients[i], filepath.Join(dir, fmt.Sprint(i)), auth)
		if n > 1 {
			conf += fmt.Sprintf("cluster { name: owltest, listen: %s, routes: [%s] }\n",
				strings.TrimPrefix(routes[i], "nats://"), strings.Join(routes, ", "))
		}
		path := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-c", path)
		out := &testkit.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting nats-server: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			if t.Failed() {
				t.Logf("nats-server n%d:\n%s", i, out.String())
			}
		})
		c.urls = append(c.urls, "nats://"+clients[i])
		c.procs = append(c.procs, cmd)
	}
	for _, u := range c.urls {
		eventually(t, time.Minute, func() error {
			nc, err := nats.Connect(u, connect...)
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := nc.JetStream()
			if err != nil {
				return err
			}
			_, err = js.AccountInfo()
			return err
		})
	}
	return c
}

// startNode starts owl serve on dataDir as a node of the cluster on nc.
func startNode(t testing.TB, nc *natsCluster, dataDir, name, role string, args ...string) *owlProcess {
	t.Helper()
	ready := "/2016-08-19/account-settings"
	if role == "worker" {
		ready = "/healthz"
	}
	all := append([]string{"--nats", nc.URL(), "--nats-user", "owl", "--role", role, "--node-name", name,
		"--spare-inits", "0", "--prewarm", "0", "--memory-budget", "2048", "--memory-overcommit", "4"}, args...)
	return startOwlWith(t, dataDir, ready, all, "OWL_NATS_USER_PASSWORD="+natsTestPassword)
}

// nodes is GET /owl/v1/nodes on p, by name.
func (p *owlProcess) nodes(t testing.TB) map[string]lambdawire.Node {
	t.Helper()
	resp, body := p.do(http.MethodGet, "/owl/v1/nodes", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /owl/v1/nodes: %d %s", resp.StatusCode, body)
	}
	var l lambdawire.NodeList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	out := map[string]lambdawire.Node{}
	for _, n := range l.Nodes {
		out[n.Name] = n
	}
	return out
}

// invocationsOf sums owl_invocations_total of function fn on p's
// /metrics: what ran on that node.
func (p *owlProcess) invocationsOf(t testing.TB, fn string) int {
	t.Helper()
	return int(p.metricSum(t, "owl_invocations_total", `function="`+fn+`"`))
}

// metricSum sums the series of metric name on p's /metrics whose labels
// contain label.
func (p *owlProcess) metricSum(t testing.TB, name, label string) float64 {
	t.Helper()
	resp, body := p.do(http.MethodGet, "/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// invokeOutcome is one invocation's answer through the API.
type invokeOutcome struct {
	status  int
	errType string // X-Amzn-ErrorType
	body    string
	took    time.Duration
	ended   time.Time
	err     error
}

// invokeHTTP invokes fn on url with the token; safe from any goroutine.
func invokeHTTP(url, fn, payload string, hdr map[string]string) invokeOutcome {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, url+"/2015-03-31/functions/"+fn+"/invocations", strings.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		return invokeOutcome{err: err, took: time.Since(start), ended: time.Now()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return invokeOutcome{status: resp.StatusCode, errType: resp.Header.Get("X-Amzn-ErrorType"), body: string(b),
		took: time.Since(start), ended: time.Now()}
}

// invokeMany invokes fn n times, conc at once, and returns the outcomes.
func invokeMany(url, fn, payload string, n, conc int) []invokeOutcome {
	out := make([]invokeOutcome, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = invokeHTTP(url, fn, payload, nil)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func wantAllOK(t testing.TB, what string, outs []invokeOutcome) {
	t.Helper()
	for i, o := range outs {
		if o.err != nil || o.status != http.StatusOK || strings.Contains(o.body, "errorType") {
			t.Fatalf("%s: invocation %d: %v %d %s %s", what, i, o.err, o.status, o.errType, o.body)
		}
	}
}

// testCluster is an api node and two workers on a NATS cluster of three
// servers; w2 runs provided.* runtimes only.
type testCluster struct {
	nats        *natsCluster
	api, w1, w2 *owlProcess
}

func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	requireRoot(t)
	build(t)
	c := &testCluster{nats: startNATSCluster(t, 3)}
	c.api = startNode(t, c.nats, t.TempDir(), "api1", "api")
	c.w1 = startNode(t, c.nats, t.TempDir(), "w1", "worker")
	c.w2 = startNode(t, c.nats, t.TempDir(), "w2", "worker", "--runtimes", "provided,provided.al2,provided.al2023")
	t.Cleanup(func() {
		if t.Failed() {
			for name, p := range map[string]*owlProcess{"api1": c.api, "w1": c.w1, "w2": c.w2} {
				t.Logf("owl serve %s:\n%s", name, p.stderr.String())
			}
		}
	})
	testkit.WaitFor(t, 30*time.Second, "the api node to see both workers", func() bool {
		ns := c.api.nodes(t)
		return ns["w1"].Health == "ok" && ns["w2"].Health == "ok" && ns["api1"].Health == "ok"
	})
	return c
}

// stop stops the three nodes with SIGTERM and checks each stopped cleanly.
func (c *testCluster) stop(t *testing.T) {
	t.Helper()
	stopAll(t, c.api, c.w1, c.w2)
}

// stopAll stops ps with SIGTERM, all at once, and checks each stopped
// cleanly.
func stopAll(t *testing.T, ps ...*owlProcess) {
	t.Helper()
	for _, p := range ps {
		p.sigterm(t)
	}
	for _, p := range ps {
		p.wantCleanStop(t)
	}
}

// TestClusterPlacement: invocations through the api node run on both
// workers; a drained worker gets no new ones; a function whose runtime a
// worker lacks never runs there; a worker serves no API; owl nodes lists
// the three nodes.
func TestClusterPlacement(t *testing.T) {
	c := startTestCluster(t)
	c.api.createKitchensink("spread", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(30) })
	py := interpreter(t, "python3")
	c.api.createZip("py", py, "app.handler", makeZip(t, zipEntry{name: "app.py", body: "def handler(event, context):\n    return event\n"}))

	// Concurrent load: each worker's warm environments are taken, so the
	// other gets work too.
	wantAllOK(t, "spread", invokeMany(c.api.URL, "spread", `{"action":"sleep","ms":200}`, 40, 6))
	on1, on2 := c.w1.invocationsOf(t, "spread"), c.w2.invocationsOf(t, "spread")
	if on1 == 0 || on2 == 0 || on1+on2 != 40 {
		t.Fatalf("40 invocations ran %d on w1 and %d on w2: want both some, 40 in all", on1, on2)
	}
	if got := c.api.invocationsOf(t, "spread"); got != 0 {
		t.Errorf("the api node ran %d invocations itself", got)
	}

	// A payload near Lambda's 6 MB each way crosses the hop whole.
	big := `{"action":"echo","pad":"` + strings.Repeat("x", 6_000_000) + `"}`
	if o := invokeHTTP(c.api.URL, "spread", big, nil); o.status != http.StatusOK || o.body != big {
		t.Errorf("a %d-byte echo through the api node: %d %s, %d bytes back", len(big), o.status, o.errType, len(o.body))
	}

	// A runtime w2 lacks: everything runs on w1.
	wantAllOK(t, "py", invokeMany(c.api.URL, "py", `{"n":1}`, 12, 4))
	if on2 := c.w2.invocationsOf(t, "py"); on2 != 0 {
		t.Errorf("w2 (no Python) ran %d invocations of a Python function", on2)
	}
	if on1 := c.w1.invocationsOf(t, "py"); on1 != 12 {
		t.Errorf("w1 ran %d of 12 Python invocations", on1)
	}

	// Drain w1 while it runs an invocation: that one finishes, new work
	// goes to w2 only; undo puts it back.
	var running sync.WaitGroup
	inDrain := make([]invokeOutcome, 4)
	for i := range inDrain {
		running.Add(1)
		go func() {
			defer running.Done()
			inDrain[i] = invokeHTTP(c.api.URL, "spread", `{"action":"sleep","ms":3000,"path":"/tmp/draining"}`, nil)
		}()
	}
	inFlight(t, c.w1.dataDir, "spread", "/tmp/draining")
	out, stderr, code := owlCLI(t, c.api.URL, "nodes", "drain", "w1")
	if code != 0 || !strings.Contains(out, "w1: draining") {
		t.Fatalf("owl nodes drain w1: exit %d\n%s%s", code, out, stderr)
	}
	running.Wait()
	wantAllOK(t, "invocations running when w1 was drained", inDrain)
	before1, before2 := c.w1.invocationsOf(t, "spread"), c.w2.invocationsOf(t, "spread")
	wantAllOK(t, "spread while w1 drains", invokeMany(c.api.URL, "spread", `{"action":"sleep","ms":50}`, 12, 4))
	if d1, d2 := c.w1.invocationsOf(t, "spread")-before1, c.w2.invocationsOf(t, "spread")-before2; d1 != 0 || d2 != 12 {
		t.Errorf("with w1 draining, w1 ran %d and w2 %d of 12", d1, d2)
	}
	// The Python function has no node left: a clear 503.
	o := invokeHTTP(c.api.URL, "py", `{}`, nil)
	if o.status != http.StatusServiceUnavailable || o.errType != "ServiceUnavailableException" || !strings.Contains(o.body, "w2 lack runtime "+py) {
		t.Errorf("a Python invocation with w1 drained: %d %s %s", o.status, o.errType, o.body)
	}
	if _, stderr, code := owlCLI(t, c.api.URL, "nodes", "drain", "w1", "--undo"); code != 0 {
		t.Fatalf("owl nodes drain w1 --undo: exit %d\n%s", code, stderr)
	}
	wantAllOK(t, "py after undo", invokeMany(c.api.URL, "py", `{}`, 2, 1))

	// Draining a node that does not exist, or with a bad name.
	resp, body := c.api.do(http.MethodPost, "/owl/v1/nodes/nosuch/drain", []byte(`{"drain":true}`), nil)
	wantError(t, resp, body, http.StatusNotFound, "ResourceNotFoundException", "~No live node named nosuch")
	resp, body = c.api.do(http.MethodPost, "/owl/v1/nodes/a.b/drain", nil, nil)
	wantError(t, resp, body, http.StatusBadRequest, "InvalidParameterValueException", "~Node name")

	// Response streams are not forwarded: an api node refuses them.
	resp, body = c.api.do(http.MethodPost, "/2021-11-15/functions/spread/response-streaming-invocations", []byte(`{}`), nil)
	wantError(t, resp, body, http.StatusServiceUnavailable, "ServiceUnavailableException", "~stream through a node of role all")

	// A worker serves no API, and says where it is.
	resp, body = c.w1.do(http.MethodGet, "/2015-03-31/functions", nil, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "--role worker") {
		t.Errorf("a worker's ListFunctions: %d %s", resp.StatusCode, body)
	}

	out, stderr, code = owlCLI(t, c.api.URL, "nodes")
	if code != 0 {
		t.Fatalf("owl nodes: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"api1", "w1", "w2", "worker", "ok", "spread:$LATEST="} {
		if !strings.Contains(out, want) {
			t.Errorf("owl nodes lacks %q:\n%s", want, out)
		}
	}
	out, stderr, code = owlCLI(t, c.api.URL, "nodes", "--json")
	var listed lambdawire.NodeList
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Nodes) != 3 {
		t.Errorf("owl nodes --json: exit %d\n%s%s", code, out, stderr)
	}
	c.stop(t)
}

// TestClusterWorkerKilled: a worker killed with SIGKILL under load. The
// synchronous invocations it ran fail at once with ServiceException
// (never at their timeout), the others succeed; new invocations go to
// the other worker; every asynchronous event is delivered; owl nodes
// shows it lost; restarted on its data dir it rejoins, and nothing of
// the killed run is left.
func TestClusterWorkerKilled(t *testing.T) {
	c := startTestCluster(t)
	c.api.createKitchensink("slow", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(60) })
	c.api.createKitchensink("ev", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(30) })
	wantAllOK(t, "warming", invokeMany(c.api.URL, "slow", `{"action":"sleep","ms":100}`, 12, 4))
	if c.w1.invocationsOf(t, "slow") == 0 || c.w2.invocationsOf(t, "slow") == 0 {
		t.Fatal("the warm-up did not reach both workers")
	}

	// Load: synchronous invocations sleeping 20 s (their timeout is
	// 60 s) and asynchronous events, on both workers.
	const syncN, asyncN = 6, 24
	var wg sync.WaitGroup
	syncOut := make([]invokeOutcome, syncN)
	for i := range syncN {
		wg.Add(1)
		go func() {
			defer wg.Done()
			syncOut[i] = invokeHTTP(c.api.URL, "slow", `{"action":"sleep","ms":20000,"path":"/tmp/in-flight"}`, nil)
		}()
	}
	for i := range asyncN {
		o := invokeHTTP(c.api.URL, "ev", fmt.Sprintf(`{"action":"sleep","ms":1500,"print":"GOT ev-%d"}`, i),
			map[string]string{"X-Amz-Invocation-Type": "Event"})
		if o.status != http.StatusAccepted {
			t.Fatalf("Event invocation %d: %d %s", i, o.status, o.body)
		}
	}
	inFlight(t, c.w1.dataDir, "slow", "/tmp/in-flight")
	inFlight(t, c.w2.dataDir, "slow", "/tmp/in-flight")
	restarted := cleanAfterKill(t, c.nats, c.w1, "w1")
	if err := c.w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.w1.waitExit(t, 30*time.Second)

	// New work right after the kill goes to w2.
	after := invokeMany(c.api.URL, "slow", `{"action":"sleep","ms":10}`, 8, 4)
	wantAllOK(t, "invocations after the kill", after)

	wg.Wait()
	failed := 0
	for i, o := range syncOut {
		switch {
		case o.err == nil && o.status == http.StatusOK && strings.Contains(o.body, "slept"):
		case o.status == http.StatusInternalServerError && o.errType == "ServiceException" && strings.Contains(o.body, "(w1) stopped"):
			failed++
			if lag := o.ended.Sub(killed); lag > 10*time.Second {
				t.Errorf("invocation %d on the killed worker failed %v after the kill: want fast, not at its timeout", i, lag)
			}
		default:
			t.Errorf("invocation %d: %v %d %s %s", i, o.err, o.status, o.errType, o.body)
		}
	}
	if failed == 0 {
		t.Error("no invocation failed, though w1 ran one when it was killed")
	}
	t.Logf("%d of %d in-flight invocations were on w1 and failed", failed, syncN)

	testkit.WaitFor(t, 10*time.Second, "owl nodes to show w1 lost", func() bool {
		n, ok := c.api.nodes(t)["w1"]
		return !ok || n.Health == "lost"
	})
	if lost := c.api.metricSum(t, "owl_placements_total", `outcome="node_lost"`); lost < float64(failed) {
		t.Errorf("owl_placements_total{outcome=node_lost} = %v, want at least the %d failures", lost, failed)
	}
	if ok := c.api.metricSum(t, "owl_cluster_nodes", `health="ok"`); ok != 2 {
		t.Errorf("owl_cluster_nodes{health=ok} = %v after the kill, want 2 (api1, w2)", ok)
	}
	testkit.WaitFor(t, 3*time.Minute, "every asynchronous event delivered", func() bool {
		log := c.api.logText("ev")
		for i := range asyncN {
			if !strings.Contains(log, fmt.Sprintf("GOT ev-%d\n", i)) {
				return false
			}
		}
		return true
	})

	// w1 comes back on its data dir: it cleans up what the kill left and
	// rejoins.
	c.w1 = startNode(t, c.nats, c.w1.dataDir, "w1", "worker")
	restarted()
	testkit.WaitFor(t, 30*time.Second, "w1 to rejoin", func() bool { return c.api.nodes(t)["w1"].Health == "ok" })
	c.stop(t)
}

// TestClusterBadNATS: owl serve with a NATS it cannot use stops at start
// with one line saying why, leaving nothing behind.
func TestClusterBadNATS(t *testing.T) {
	requireRoot(t)
	build(t)
	nc := startNATSCluster(t, 1)
	nobody := "nats://" + testkit.FreeAddr(t)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"nothing there", []string{"--nats", nobody}, nil, "connecting to NATS at " + nobody + ": nats: no servers available"},
		{"wrong password", []string{"--nats", nc.URL(), "--nats-user", "owl"}, []string{"OWL_NATS_USER_PASSWORD=wrong"}, "nats: Authorization Violation"},
		{"no password", []string{"--nats", nc.URL()}, nil, "nats: Authorization Violation"},
		{"not a NATS URL", []string{"--nats", "http://x"}, nil, `nats "http://x": want nats://HOST:PORT`},
		{"api without NATS", []string{"--role", "api"}, nil, "role api: the nodes of a cluster share a NATS"},
		{"two identities", []string{"--nats", nc.URL(), "--nats-user", "owl"}, []string{"OWL_NATS_TOKEN=t", "OWL_NATS_USER_PASSWORD=x"}, "give one NATS identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			cmd := exec.Command(owlBinary, append([]string{"serve", "--addr", testkit.FreeAddr(t), "--data", dataDir}, tc.args...)...)
			cmd.Env = owlEnv(tc.env...)
			_, stderr, code := runCmd(t, cmd)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("owl serve %v: exit %d, want non-zero and %q in:\n%s", tc.args, code, tc.want, stderr)
			}
			checkNothingLeft(t, dataDir)
		})
	}
}

// TestNodesAlone: a node outside a cluster lists itself, and refuses to
// drain.
func TestNodesAlone(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	resp, body := ts.do(http.MethodGet, "/owl/v1/nodes", nil, nil)
	var l lambdawire.NodeList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &l) != nil || len(l.Nodes) != 1 {
		t.Fatalf("GET /owl/v1/nodes alone: %d %s", resp.StatusCode, body)
	}
	if n := l.Nodes[0]; n.Role != "all" || n.Health != "ok" || n.MemoryMB == 0 || len(n.Runtimes) == 0 {
		t.Errorf("the node alone: %+v", n)
	}
	resp, body = ts.do(http.MethodPost, "/owl/v1/nodes/"+l.Nodes[0].Name+"/drain", nil, nil)
	wantError(t, resp, body, http.StatusBadRequest, "InvalidParameterValueException", "~not part of a cluster")
}

// TestClusterTLSAndNKey: a node joins a NATS that requires TLS and an
// NKey user; the wrong CA stops it at start with one line.
func TestClusterTLSAndNKey(t *testing.T) {
	requireRoot(t)
	build(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCerts(t, dir)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(dir, "owl.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	nkeyOpt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	auth := fmt.Sprintf("tls { cert_file: %q, key_file: %q }\nauthorization { users: [ { nkey: %q } ] }\n", certFile, keyFile, pub)
	nc := startNATS(t, 1, auth, nkeyOpt, nats.RootCAs(caFile))
	url := strings.Replace(nc.URL(), "nats://", "tls://", 1)

	otherCA, _, _ := writeTestCerts(t, t.TempDir())
	cmd := exec.Command(owlBinary, "serve", "--addr", testkit.FreeAddr(t), "--data", t.TempDir(),
		"--nats", url, "--nats-ca", otherCA, "--nats-nkey", seedFile)
	cmd.Env = owlEnv()
	if _, stderr, code := runCmd(t, cmd); code == 0 || !strings.Contains(stderr, "certificate signed by unknown authority") {
		t.Fatalf("owl serve with the wrong CA: exit %d\n%s", code, stderr)
	}

	p := startOwlWith(t, t.TempDir(), "/2016-08-19/account-settings", []string{"--nats", url, "--nats-ca", caFile,
		"--nats-nkey", seedFile, "--node-name", "solo", "--spare-inits", "0", "--prewarm", "0"})
	p.createKitchensink("tls")
	wantAllOK(t, "over TLS", invokeMany(p.URL, "tls", `{}`, 3, 1))
	if n := p.nodes(t)["solo"]; n.Health != "ok" || n.Role != "all" {
		t.Errorf("the node over TLS: %+v", n)
	}
	p.sigterm(t)
	p.wantCleanStop(t)
}

// writeTestCerts writes a new CA and a certificate for 127.0.0.1 it
// signed, PEM, into dir.
func writeTestCerts(t testing.TB, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "owl test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// cleanAfterKill makes sure the sandboxes of p, about to be killed, do
// not outlive the test: unless the returned func is called (the test
// restarted it on its data dir itself), the test's end starts p's node
// again on its data dir, which removes what the kill left, and stops it.
func cleanAfterKill(t testing.TB, nc *natsCluster, p *owlProcess, name string, args ...string) (restarted func()) {
	var done bool
	t.Cleanup(func() {
		if !done {
			again := startNode(t, nc, p.dataDir, name, "worker", args...)
			again.sigterm(t)
			again.waitExit(t, 30*time.Second)
		}
	})
	return func() { done = true }
}

// TestClusterNoWorkerYet: an api node alone answers a synchronous
// invocation 503, naming why, and keeps the asynchronous ones it
// accepted; a worker that joins later runs them all.
func TestClusterNoWorkerYet(t *testing.T) {
	requireRoot(t)
	build(t)
	nc := startNATSCluster(t, 1)
	api := startNode(t, nc, t.TempDir(), "api1", "api", "--async-throttle-backoff", "2s")
	api.createKitchensink("later")
	o := invokeHTTP(api.URL, "later", `{}`, nil)
	if o.status != http.StatusServiceUnavailable || o.errType != "ServiceUnavailableException" || !strings.Contains(o.body, "No live node can run it now") {
		t.Fatalf("a synchronous invocation with no worker: %d %s %s", o.status, o.errType, o.body)
	}
	const n = 5
	for i := range n {
		o := invokeHTTP(api.URL, "later", fmt.Sprintf(`{"print":"LATER %d"}`, i), map[string]string{"X-Amz-Invocation-Type": "Event"})
		if o.status != http.StatusAccepted {
			t.Fatalf("Event invocation %d: %d %s", i, o.status, o.body)
		}
	}
	w := startNode(t, nc, t.TempDir(), "w1", "worker")
	testkit.WaitFor(t, 2*time.Minute, "the events accepted before any worker to run", func() bool {
		log := api.logText("later")
		for i := range n {
			if !strings.Contains(log, fmt.Sprintf("LATER %d\n", i)) {
				return false
			}
		}
		return true
	})
	for _, p := range []*owlProcess{api, w} {
		p.sigterm(t)
	}
	for _, p := range []*owlProcess{api, w} {
		p.wantCleanStop(t)
	}
}

// TestClusterLimits: reserved concurrency holds across the workers (one
// slot, two workers: never two at once; the others are throttled with
// Lambda's reason), and provisioned concurrency is split over the
// workers, the survivor taking over a killed worker's part.
func TestClusterLimits(t *testing.T) {
	c := startTestCluster(t)
	c.api.createKitchensink("capped", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(30) })
	// A replica that has not applied the CreateFunction yet may answer
	// the read behind this call (docs/cluster.md, *Reading your writes*).
	eventually(t, 30*time.Second, func() error {
		resp, body := c.api.do(http.MethodPut, "/2017-10-31/functions/capped/concurrency", []byte(`{"ReservedConcurrentExecutions":1}`), nil)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("PutFunctionConcurrency: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	// Each worker alone would admit one: together they must not.
	outs := invokeMany(c.api.URL, "capped", `{"action":"sleep","ms":3000}`, 6, 6)
	var ran []invokeOutcome
	throttled := 0
	for i, o := range outs {
		switch {
		case o.err == nil && o.status == http.StatusOK:
			ran = append(ran, o)
		case o.status == http.StatusTooManyRequests && strings.Contains(o.body, "ReservedFunctionConcurrentInvocationLimitExceeded"):
			throttled++
		default:
			t.Errorf("invocation %d: %v %d %s %s", i, o.err, o.status, o.errType, o.body)
		}
	}
	if len(ran) == 0 || throttled == 0 {
		t.Fatalf("%d ran and %d were throttled: want some of each", len(ran), throttled)
	}
	for i := range ran {
		for j := range i {
			a, b := ran[i], ran[j]
			end, start := a.ended, a.ended.Add(-a.took)
			if b.ended.Before(end) {
				end = b.ended
			}
			if bs := b.ended.Add(-b.took); bs.After(start) {
				start = bs
			}
			overlap := end.Sub(start)
			if overlap > 2500*time.Millisecond {
				t.Errorf("two invocations of a function reserved to 1 ran together for %v (3 s sleeps)", overlap)
			}
		}
	}

	// Provisioned concurrency 2 on version 1: one environment on each
	// worker; when w2 dies, w1 keeps both.
	c.api.createKitchensink("prov")
	for _, call := range []struct {
		method, path, body string
		want               int
	}{
		{http.MethodPost, "/2015-03-31/functions/prov/versions", `{}`, http.StatusCreated},
		{http.MethodPut, "/2019-09-30/functions/prov/provisioned-concurrency?Qualifier=1", `{"ProvisionedConcurrentExecutions":2}`, http.StatusAccepted},
	} {
		eventually(t, 30*time.Second, func() error {
			resp, body := c.api.do(call.method, call.path, []byte(call.body), nil)
			if resp.StatusCode != call.want {
				return fmt.Errorf("%s %s: %d %s", call.method, call.path, resp.StatusCode, body)
			}
			return nil
		})
	}
	provisioned := func(p *owlProcess, node string) int { return p.nodes(t)[node].Environments["prov:1"]["provisioned"] }
	testkit.WaitFor(t, 2*time.Minute, "one provisioned environment on each worker", func() bool {
		return provisioned(c.api, "w1") == 1 && provisioned(c.api, "w2") == 1
	})
	testkit.WaitFor(t, 30*time.Second, "the config READY with 2 available", func() bool {
		_, body := c.api.do(http.MethodGet, "/2019-09-30/functions/prov/provisioned-concurrency?Qualifier=1", nil, nil)
		var st struct {
			Status                                   string
			AvailableProvisionedConcurrentExecutions int
		}
		return json.Unmarshal(body, &st) == nil && st.Status == "READY" && st.AvailableProvisionedConcurrentExecutions == 2
	})
	restarted := cleanAfterKill(t, c.nats, c.w2, "w2", "--runtimes", "provided,provided.al2,provided.al2023")
	if err := c.w2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.w2.waitExit(t, 30*time.Second)
	testkit.WaitFor(t, time.Minute, "w1 to take over w2's provisioned environment", func() bool {
		return provisioned(c.api, "w1") == 2
	})
	c.w2 = startNode(t, c.nats, c.w2.dataDir, "w2", "worker", "--runtimes", "provided,provided.al2,provided.al2023")
	restarted()
	testkit.WaitFor(t, time.Minute, "the split back to one each once w2 rejoins", func() bool {
		return provisioned(c.api, "w1") == 1 && provisioned(c.api, "w2") == 1
	})
	c.stop(t)
}

// TestClusterRollingRestart: every node restarted in turn (SIGTERM, then
// owl serve again on its data dir) while asynchronous events stream in
// through the api node: every event the API accepted (202) is delivered;
// what it refused while it restarted was never accepted.
func TestClusterRollingRestart(t *testing.T) {
	c := startTestCluster(t)
	c.api.createKitchensink("steady", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(30) })
	var mu sync.Mutex
	apiURL := c.api.URL
	l := startAsyncLoad("steady", func() string {
		mu.Lock()
		defer mu.Unlock()
		return apiURL
	})
	l.waitMore(t, 10, "events accepted before the restarts")
	for _, w := range []struct {
		p    **owlProcess
		name string
		args []string
	}{{&c.w1, "w1", nil}, {&c.w2, "w2", []string{"--runtimes", "provided,provided.al2,provided.al2023"}}} {
		(*w.p).sigterm(t)
		(*w.p).wantCleanStop(t)
		*w.p = startNode(t, c.nats, (*w.p).dataDir, w.name, "worker", w.args...)
		testkit.WaitFor(t, time.Minute, w.name+" back", func() bool { return c.api.nodes(t)[w.name].Health == "ok" })
		l.waitMore(t, 10, "events accepted after restarting "+w.name)
	}
	c.api.sigterm(t)
	c.api.wantCleanStop(t)
	c.api = startNode(t, c.nats, c.api.dataDir, "api1", "api")
	mu.Lock()
	apiURL = c.api.URL
	mu.Unlock()
	l.waitMore(t, 10, "events accepted after restarting the api node")
	l.finish(t, c.api, "steady")
	c.stop(t)
}

// asyncLoad streams Event invocations of fn through the api node whose
// URL url returns, recording which were accepted (202), until stopped.
type asyncLoad struct {
	mu       sync.Mutex
	accepted []int
	refused  []invokeOutcome
	stop     chan struct{}
	done     chan struct{}
}

func startAsyncLoad(fn string, url func() string) *asyncLoad {
	l := &asyncLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			o := invokeHTTP(url(), fn, fmt.Sprintf(`{"action":"sleep","ms":20,"print":"GOT r-%d"}`, i),
				map[string]string{"X-Amz-Invocation-Type": "Event"})
			l.mu.Lock()
			if o.err == nil && o.status == http.StatusAccepted {
				l.accepted = append(l.accepted, i)
			} else if o.err == nil {
				l.refused = append(l.refused, o)
			}
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

// waitMore waits until n more events than now were accepted.
func (l *asyncLoad) waitMore(t testing.TB, n int, what string) {
	t.Helper()
	l.mu.Lock()
	from := len(l.accepted)
	l.mu.Unlock()
	testkit.WaitFor(t, time.Minute, what, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.accepted) >= from+n
	})
}

// finish stops the load and waits until every accepted event's line is
// in fn's log, read through p.
func (l *asyncLoad) finish(t testing.TB, p *owlProcess, fn string) {
	t.Helper()
	close(l.stop)
	<-l.done
	want := append([]int(nil), l.accepted...)
	testkit.WaitFor(t, 3*time.Minute, fmt.Sprintf("all %d accepted events delivered", len(want)), func() bool {
		// A read may fail while the store elects new leaders: read again.
		resp, body := p.do(http.MethodGet, "/owl/v1/functions/"+fn+"/logs?limit=100000", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Logf("logs of %s: %d %s; reading again", fn, resp.StatusCode, body)
			return false
		}
		log := string(body)
		for _, i := range want {
			if !strings.Contains(log, fmt.Sprintf("GOT r-%d\n", i)) {
				return false
			}
		}
		return true
	})
}

// TestClusterMinority: an api node whose NATS server is cut off from the
// other two (they are stopped: it is a minority of one) accepts no Event
// invocation it cannot store on a majority — a clear 5xx, never a 202 —
// and once the servers are back it accepts again, and every event it did
// accept is delivered.
func TestClusterMinority(t *testing.T) {
	requireRoot(t)
	build(t)
	nc := startNATSCluster(t, 3)
	w1 := startNode(t, nc, t.TempDir(), "w1", "worker")
	lone := &natsCluster{urls: nc.urls[2:]}
	api := startNode(t, lone, t.TempDir(), "api1", "api")
	t.Cleanup(func() {
		for _, p := range nc.procs[:2] {
			_ = p.Process.Signal(syscall.SIGCONT)
		}
	})
	api.createKitchensink("minor", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(30) })
	l := startAsyncLoad("minor", func() string { return api.URL })
	l.waitMore(t, 5, "events accepted with all three servers")
	for _, p := range nc.procs[:2] {
		if err := p.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	// Whatever the API was storing at the cut may still be acknowledged;
	// after that, nothing is accepted until the majority is back.
	time.Sleep(2 * time.Second)
	l.mu.Lock()
	cut, refusedAtCut := len(l.accepted), len(l.refused)
	l.mu.Unlock()
	testkit.WaitFor(t, time.Minute, "the API to refuse events in the minority", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.refused) >= refusedAtCut+3
	})
	l.mu.Lock()
	if len(l.accepted) != cut {
		t.Errorf("the minority accepted %d events it could not store on a majority", len(l.accepted)-cut)
	}
	for _, o := range l.refused[refusedAtCut:] {
		if o.status < 500 || o.errType == "" {
			t.Errorf("an event refused in the minority: %d %q %s; want a 5xx with an error type", o.status, o.errType, o.body)
		}
	}
	l.mu.Unlock()
	for _, p := range nc.procs[:2] {
		if err := p.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	l.waitMore(t, 10, "events accepted once the majority is back")
	l.finish(t, api, "minor")
	stopAll(t, api, w1)
}
