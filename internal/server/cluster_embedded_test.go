package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/testkit"
)

// owlCluster is the nodes of one Owl cluster on loopback: each its own
// data dir, API address and route listener, every node routed to all.
type owlCluster struct {
	t      *testing.T
	name   string
	routes string // --routes, every node's route URL
	nodes  []*owlProcess
	args   [][]string // each node's cluster flags, for a restart
}

// newOwlCluster picks n route listeners and the nodes' data dirs (fresh,
// unless dataDirs gives one).
func newOwlCluster(t *testing.T, n int) (*owlCluster, []string) {
	c := &owlCluster{t: t, name: "owl-test", nodes: make([]*owlProcess, n), args: make([][]string, n)}
	var routes, addrs, dirs []string
	for i := 0; i < n; i++ {
		a := testkit.FreeAddr(t)
		addrs = append(addrs, a)
		routes = append(routes, "nats-route://"+a)
		dirs = append(dirs, t.TempDir())
	}
	c.routes = strings.Join(routes, ",")
	for i := range c.args {
		c.args[i] = []string{"--node-name", fmt.Sprintf("node-%c", 'a'+i), "--cluster-name", c.name,
			"--cluster-addr", addrs[i], "--routes", c.routes, "--cluster-user", "route"}
	}
	return c, dirs
}

// clusterEnv is a node's environment: the route password, and the test's
// API credentials unless fresh (a node that adopts the cluster's).
func clusterEnv(fresh bool) []string {
	env := owlEnv("OWL_CLUSTER_PASSWORD=route-secret", "OWL_ASYNC_RETRY_DELAY=100ms")
	if !fresh {
		return env
	}
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "OWL_ACCESS_KEY_ID=") && !strings.HasPrefix(kv, "OWL_SECRET_ACCESS_KEY=") && !strings.HasPrefix(kv, "OWL_TOKEN=") {
			out = append(out, kv)
		}
	}
	return out
}

// start launches the nodes idx on their data dirs at once (a clustered
// node waits for a majority of the cluster) and waits until all answer.
func (c *owlCluster) start(dirs []string, fresh bool, idx ...int) {
	c.t.Helper()
	for _, i := range idx {
		n := launchOwl(c.t, dirs[i], clusterEnv(fresh), c.args[i]...)
		c.nodes[i] = n
		c.t.Cleanup(func() {
			if c.t.Failed() {
				c.t.Logf("node %d's log:\n%s", i, n.stderr.String())
			}
		})
	}
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.nodes[i].waitReadyNoFatal(3 * time.Minute)
		}()
	}
	wg.Wait()
	for _, i := range idx {
		if err := c.nodes[i].readyErr; err != nil {
			c.t.Fatalf("node %d: %v\n%s", i, err, c.nodes[i].stderr.String())
		}
	}
}

// TestClusterThreeNodes: three owl serve processes cluster their embedded
// NATS on loopback. A function deployed through node A with the AWS SDK
// is invoked through node C; an async event accepted on B is delivered
// once; a schedule fires once per cluster and a subject trigger delivers
// each message once; node B killed with SIGKILL, A and C go on serving
// and nothing accepted is lost; B restarted rejoins by itself, and,
// having lost its credentials file, adopts the cluster's; started with
// other credentials, it is refused with a clear error.
//
// It is long because it walks one cluster through its life.
func TestClusterThreeNodes(t *testing.T) {
	c, dirs := newOwlCluster(t, 3)
	// A new cluster elects its first leader with every server up.
	c.start(dirs, false, 0, 1, 2)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]

	a.createKitchensink("hello")
	// Node C learns of the function through its registry's watch a moment
	// later (docs/cluster.md, *Reading your writes*).
	eventually(t, 30*time.Second, func() error {
		if resp, body := cn.do(http.MethodGet, "/2015-03-31/functions/hello", nil, nil); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GetFunction on node C: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if r := cn.invoke("hello", `{"name":"cluster"}`); r.funcErr != "" || !strings.Contains(r.payload, "hello cluster") {
		t.Fatalf("invoke through node C: %+v", r)
	}

	// An async event accepted on B runs once.
	id := b.invokeEvent("hello", `{"print":"async-on-b"}`)
	a.waitRuns("hello", id, 1)

	// A schedule fires once per cluster: three schedulers, one firing each.
	a.createKitchensink("ticker")
	if _, stderr, code := owlCLI(t, a.URL, "trigger", "add", "tick", "--schedule", "rate(1 second)", "--function", "ticker"); code != 0 {
		t.Fatalf("owl trigger add tick: exit %d\n%s", code, stderr)
	}
	// A subject trigger reads each message once, whichever node it was
	// published on.
	cn.createZip("batch", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: printBatch}))
	if _, stderr, code := owlCLI(t, b.URL, "trigger", "add", "--subject", "work.items", "--function", "batch"); code != 0 {
		t.Fatalf("owl trigger add --subject: exit %d\n%s", code, stderr)
	}
	nodes := []*owlProcess{a, b, cn}
	for i := 0; i < 6; i++ {
		if _, stderr, code := owlCLI(t, nodes[i%3].URL, "events", "publish", "work.items", "--data", fmt.Sprintf(`"item-%d"`, i)); code != 0 {
			t.Fatalf("owl events publish: exit %d\n%s", code, stderr)
		}
	}
	testkit.WaitFor(t, 2*time.Minute, "each item delivered", func() bool { return strings.Count(a.logText("batch"), `GOT "item-`) >= 6 })
	testkit.WaitFor(t, time.Minute, "schedule firings", func() bool { return len(a.firings("ticker")) >= 5 })
	wantOnce(t, a)

	// B dies. A and C go on serving; an event B accepted before is not lost.
	id = b.invokeEvent("hello", `{"action":"sleep","ms":1500}`)
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.waitExit(t, 30*time.Second)
	// The streams B led elect new leaders among A and C (seconds): until
	// then a read may fail, never a write accepted before be lost.
	for _, n := range []*owlProcess{a, cn} {
		testkit.WaitFor(t, 2*time.Minute, "the logs readable after B died", func() bool {
			resp, _ := n.do(http.MethodGet, "/owl/v1/functions/hello/logs?limit=1", nil, nil)
			return resp.StatusCode == http.StatusOK
		})
	}
	a.waitRuns("hello", id, 1)
	for _, n := range []*owlProcess{a, cn} {
		if r := n.invoke("hello", `{"name":"after"}`); r.funcErr != "" || !strings.Contains(r.payload, "hello after") {
			t.Fatalf("invoke after B died: %+v", r)
		}
	}
	id = cn.invokeEvent("hello", `{"print":"while-b-is-down"}`)
	a.waitRuns("hello", id, 1)

	// B comes back with its data dir and flags, its credentials file lost
	// and none given: it rejoins and adopts the cluster's credentials.
	if err := os.Remove(filepath.Join(dirs[1], auth.CredentialsFile)); err != nil {
		t.Fatal(err)
	}
	c.start(dirs, true, 1)
	b = c.nodes[1]
	if got, err := auth.ReadFile(dirs[1]); err != nil || got.Token != testToken || got.AccessKeyID != testKeyID {
		t.Fatalf("the rejoined node's credentials file does not hold the cluster's: %v", err)
	}
	if r := b.invoke("hello", `{"name":"back"}`); r.funcErr != "" || !strings.Contains(r.payload, "hello back") {
		t.Fatalf("invoke through B after it rejoined: %+v", r)
	}
	wantOnce(t, b)
	if n := strings.Count(b.logText("batch"), `GOT "item-`); n != 6 {
		t.Errorf("6 published items were delivered %d times", n)
	}

	// Given other API credentials, B is refused, and says why.
	b.sigterm(t)
	b.waitExit(t, 30*time.Second)
	bad := launchOwl(t, dirs[1], append(clusterEnv(false), "OWL_TOKEN=owl_other_token_0123456789abcdefghijklm"), c.args[1]...)
	if code := bad.waitExit(t, 3*time.Minute); code == 0 {
		t.Fatalf("a node with other credentials started:\n%s", bad.stderr.String())
	}
	testkit.Contains(t, "the refused node's output", bad.stderr.String(), "API credentials differ from its cluster's", "OWL_TOKEN")
	c.stop(0, 2)
}

// stop sends SIGTERM to the nodes idx at once (one by one, the last would
// stop without a majority of the store) and checks each stops cleanly,
// leaving nothing behind.
func (c *owlCluster) stop(idx ...int) {
	c.t.Helper()
	for _, i := range idx {
		c.nodes[i].sigterm(c.t)
	}
	for _, i := range idx {
		c.nodes[i].wantCleanStop(c.t)
	}
}

// wantOnce fails the test if any schedule firing of ticker was stored twice.
func wantOnce(t *testing.T, n *owlProcess) {
	t.Helper()
	seen := map[time.Time]bool{}
	for _, at := range n.firings("ticker") {
		if seen[at] {
			t.Fatalf("firing %s stored twice by the cluster's schedulers", at)
		}
		seen[at] = true
	}
}

// printBatch logs each record of a subject trigger's batch.
const printBatch = `def handler(event, context):
    for r in event["Records"]:
        print("GOT", r["body"])
`

// TestClusterFromSingleNode: a single node's data dir, started with the
// cluster flags beside two new nodes, becomes the first node of the
// cluster with nothing lost: its function and code (invoked through
// another node), its logs, and an accepted event still waiting in the
// queue, delivered once its function may run.
func TestClusterFromSingleNode(t *testing.T) {
	c, dirs := newOwlCluster(t, 3)
	single := startOwl(t, dirs[0])
	single.createKitchensink("keep")
	if r := single.invoke("keep", `{"print":"before-the-cluster"}`); r.funcErr != "" {
		t.Fatalf("invoke on the single node: %+v", r)
	}
	single.createKitchensink("later")
	if _, err := single.sdk().PutFunctionConcurrency(context.Background(), &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("later"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		t.Fatal(err)
	}
	waiting := single.invokeEvent("later", `{"print":"waited"}`)
	single.sigterm(t)
	single.wantCleanStop(t)

	c.start(dirs, false, 0, 1, 2)
	a, b, cn := c.nodes[0], c.nodes[1], c.nodes[2]
	testkit.Contains(t, "the first node's log", a.stderr.String(), "moved the single-node store into the cluster")
	if _, err := os.Stat(filepath.Join(dirs[0], "nats.standalone")); !os.IsNotExist(err) {
		t.Errorf("the set-aside single-node store is still there: %v", err)
	}
	if r := cn.invoke("keep", `{"name":"cluster"}`); r.funcErr != "" || !strings.Contains(r.payload, "hello cluster") {
		t.Fatalf("the single node's function invoked through node C: %+v", r)
	}
	if !strings.Contains(b.logText("keep"), "before-the-cluster") {
		t.Errorf("the single node's logs are not in the cluster:\n%s", b.logText("keep"))
	}
	if _, err := b.sdk().DeleteFunctionConcurrency(context.Background(), &lambda.DeleteFunctionConcurrencyInput{
		FunctionName: aws.String("later")}); err != nil {
		t.Fatal(err)
	}
	cn.waitRuns("later", waiting, 1)
	testkit.WaitFor(t, time.Minute, "the moved assets raised to three replicas", func() bool {
		return strings.Contains(a.stderr.String()+b.stderr.String()+cn.stderr.String(), "raised a stream's replicas")
	})
	c.stop(0, 1, 2)
}
