package server_test

// The network of functions: "egress" reaches the host's networks but not
// the host nor other environments; "none" has loopback only; the Network
// field's default, validation and OWL_NETWORK_EGRESS=false.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/sandbox"

	"github.com/owl-project/owl/internal/testkit"
)

// requireNft skips tests of the egress network on hosts without nft
// (.ci/run installs it).
func requireNft(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if _, err := os.Stat("/usr/sbin/nft"); err != nil {
			testkit.Skip(t, "needs the nft command (apt-get install nftables) for the egress network")
		}
	}
}

// ipCmd runs the ip command.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// outsideHost makes a host of "the host's networks": a network namespace
// linked to the host by a veth pair on a /30 of 198.18.0.0/15 (reserved
// for tests), routed by the host, running a TCP server that greets with
// "outside". It returns the server's address and the host end's name;
// everything goes at cleanup.
func outsideHost(t *testing.T) (server netip.AddrPort, hostLink string) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testkit.Skip(t, "needs the ip command (iproute2)")
	}
	var r [4]byte
	rand.Read(r[:])
	id := fmt.Sprintf("%08x", binary.BigEndian.Uint32(r[:]))
	ns, hostEnd := "owltest-"+id, "owt"+id
	// 198.18.0.0/15 holds 2^15 /30s; host end .1, outside host .2.
	base := netip.MustParseAddr("198.18.0.0").As4()
	n := binary.BigEndian.Uint32(base[:]) + (binary.BigEndian.Uint32(r[:])%(1<<15))*4
	var hostIP, outIP [4]byte
	binary.BigEndian.PutUint32(hostIP[:], n+1)
	binary.BigEndian.PutUint32(outIP[:], n+2)
	hostAddr, outAddr := netip.AddrFrom4(hostIP), netip.AddrFrom4(outIP)

	ipCmd(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ipCmd(t, "link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostEnd).Run() })
	ipCmd(t, "addr", "add", hostAddr.String()+"/30", "dev", hostEnd)
	ipCmd(t, "link", "set", hostEnd, "up")
	ipCmd(t, "-n", ns, "addr", "add", outAddr.String()+"/30", "dev", "eth0")
	ipCmd(t, "-n", ns, "link", "set", "eth0", "up")
	ipCmd(t, "-n", ns, "link", "set", "lo", "up")

	ln := listenInNamedNetns(t, ns, netip.AddrPortFrom(outAddr, 0).String())
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("outside"))
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String()), hostEnd
}

// listenInNamedNetns listens on addr inside the network namespace
// /run/netns/<ns> (from a thread that enters it and comes back).
func listenInNamedNetns(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	err := sandbox.InNetnsAt("/run/netns/"+ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listening in netns %s: %v", ns, err)
	}
	return ln
}

// dialResult is the kitchensink's "dial" answer.
type dialResult struct {
	OK    bool   `json:"ok"`
	Err   string `json:"err"`
	Reply string `json:"reply"`
}

// dial makes function name connect to addr.
func (ts *testServer) dial(name, addr string) dialResult {
	ts.t.Helper()
	r := ts.invoke(name, fmt.Sprintf(`{"action":"dial","addr":%q,"ms":1500}`, addr))
	var d dialResult
	if r.funcErr != "" || json.Unmarshal([]byte(r.payload), &d) != nil {
		ts.t.Fatalf("dial from %s: %+v", name, r)
	}
	ts.t.Logf("%s dialing %s: %+v", name, addr, d)
	return d
}

// interfaces lists the network interfaces of function name's sandbox and
// their addresses.
func (ts *testServer) interfaces(name string) map[string][]string {
	ts.t.Helper()
	r := ts.invoke(name, `{"action":"interfaces"}`)
	var ifs map[string][]string
	if r.funcErr != "" || json.Unmarshal([]byte(r.payload), &ifs) != nil {
		ts.t.Fatalf("interfaces of %s: %+v", name, r)
	}
	return ifs
}

func ifNames(ifs map[string][]string) []string {
	var names []string
	for n := range ifs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// eth0Addr is the IPv4 address of eth0 in ifs.
func eth0Addr(t *testing.T, ifs map[string][]string) netip.Addr {
	t.Helper()
	for _, a := range ifs["eth0"] {
		if p, err := netip.ParsePrefix(a); err == nil && p.Addr().Is4() {
			return p.Addr()
		}
	}
	t.Fatalf("no IPv4 address on eth0: %v", ifs)
	return netip.Addr{}
}

// hostAddrs lists the IPv4 addresses of the host but loopback on the
// links that stay while the test runs: not the bridges of other Owl
// instances nor other tests' links (all named "ow..."), which come and
// go as parallel tests run, except those named in mine.
func hostAddrs(t *testing.T, mine ...string) []netip.Addr {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, "ow") && !slices.Contains(mine, i.Name) {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				addr, _ := netip.AddrFromSlice(ipn.IP.To4())
				out = append(out, addr)
			}
		}
	}
	return out
}

// createWithNetwork creates the kitchensink through the raw API with
// Network set (the AWS SDK cannot send Owl's extension field).
func (ts *testServer) createWithNetwork(name, network string) (*http.Response, []byte) {
	ts.t.Helper()
	return ts.do(http.MethodPost, "/2015-03-31/functions", createBody(ts.t, name, func(m map[string]any) {
		m["Code"] = map[string]any{"ZipFile": kitchenZip}
		m["Network"] = network
	}), nil)
}

// networkOf is the Network field of GetFunctionConfiguration.
func (ts *testServer) networkOf(name string) string {
	ts.t.Helper()
	resp, body := ts.do(http.MethodGet, "/2015-03-31/functions/"+name+"/configuration", nil, nil)
	if resp.StatusCode != http.StatusOK {
		ts.t.Fatalf("GetFunctionConfiguration %s: %d %s", name, resp.StatusCode, body)
	}
	var fc struct{ Network string }
	if err := json.Unmarshal(body, &fc); err != nil {
		ts.t.Fatal(err)
	}
	return fc.Network
}

func (ts *testServer) setNetwork(name, network string) (*http.Response, []byte) {
	ts.t.Helper()
	body, _ := json.Marshal(map[string]string{"Network": network})
	return ts.do(http.MethodPut, "/2015-03-31/functions/"+name+"/configuration", body, nil)
}

func TestNetworkEgress(t *testing.T) {
	t.Parallel()
	requireNft(t)
	outside, outsideLink := outsideHost(t)
	// Owl's API on every address of the host: the port is open on each.
	dataDir := t.TempDir()
	ts := startServer(t, dataDir, func(c *config.Config) { c.Addr = "0.0.0.0:0" })
	bridge := sandbox.NetworkNamesOf(instanceOf(t, dataDir)).Bridge
	apiPort := netip.MustParseAddrPort(ts.Addr()).Port()
	ts.createKitchensink("out", func(in *lambda.CreateFunctionInput) { in.Timeout = aws.Int32(15) })
	if got := ts.networkOf("out"); got != "egress" {
		t.Errorf("Network of a function created without one: %q, want the default egress", got)
	}
	if resp, body := ts.createWithNetwork("closed", "none"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a function with Network none: %d %s", resp.StatusCode, body)
	}

	ifs := ts.interfaces("out")
	if got := ifNames(ifs); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("interfaces of an egress function: %v, want eth0 and lo", ifs)
	}
	pool := netip.MustParsePrefix(config.DefaultNetworkCIDR)
	if a := eth0Addr(t, ifs); !pool.Contains(a) {
		t.Errorf("eth0 address %s is not in the pool %s", a, pool)
	}
	if got := ifNames(ts.interfaces("closed")); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("interfaces of a none function: %v, want only lo", got)
	}

	t.Run("reaches the host's networks", func(t *testing.T) {
		ts := ts.as(t)
		if d := ts.dial("out", outside.String()); !d.OK || d.Reply != "outside" {
			t.Errorf("egress function dialing %s (a host of the host's networks): %+v", outside, d)
		}
		if d := ts.dial("closed", outside.String()); d.OK {
			t.Errorf("none function reached %s: %+v", outside, d)
		}
	})

	t.Run("cannot reach the host", func(t *testing.T) {
		ts := ts.as(t)
		// The host's own addresses, its bridge's and the one facing the
		// outside host included.
		addrs := hostAddrs(t, bridge, outsideLink)
		if len(addrs) < 2 {
			t.Fatalf("host addresses %v: want at least the bridge's and another", addrs)
		}
		// The control: the API answers on each address from the host.
		for _, a := range addrs {
			ap := netip.AddrPortFrom(a, apiPort).String()
			c, err := net.Dial("tcp", ap)
			if err != nil {
				t.Fatalf("the API does not answer on %s from the host: %v", ap, err)
			}
			c.Close()
			for _, fn := range []string{"out", "closed"} {
				if d := ts.dial(fn, ap); d.OK {
					t.Errorf("function %s reached Owl's API at %s: %+v", fn, ap, d)
				}
			}
		}
		// Nor another port of the host, nor its loopback (the sandbox's own).
		if d := ts.dial("out", fmt.Sprintf("127.0.0.1:%d", apiPort)); d.OK {
			t.Errorf("egress function reached 127.0.0.1:%d: %+v", apiPort, d)
		}
	})

	t.Run("environments cannot reach one another", func(t *testing.T) {
		ts := ts.as(t)
		ts.createKitchensink("peer")
		// Environment 1 of "out" listens; its own connection proves it.
		if r := ts.invoke("out", `{"action":"listen","addr":":7000"}`); !strings.Contains(r.payload, `"ok":true`) {
			t.Fatalf("listen: %+v", r)
		}
		target := netip.AddrPortFrom(eth0Addr(t, ts.interfaces("out")), 7000).String()
		if d := ts.dial("out", target); !d.OK || !strings.HasPrefix(d.Reply, "hello from ") {
			t.Fatalf("the listening environment cannot reach itself at %s: %+v", target, d)
		}
		// Keep environment 1 busy: the next invocations of "out" start a
		// second environment.
		var wg sync.WaitGroup
		wg.Go(func() {
			if r := ts.invoke("out", `{"action":"sleep","ms":5000,"path":"/tmp/busy"}`); r.funcErr != "" {
				t.Errorf("busy invocation: %+v", r)
			}
		})
		inFlight(t, ts.dataDir, "out", "/tmp/busy")
		if d := ts.dial("out", target); d.OK {
			t.Errorf("a second environment of the same function reached the first at %s: %+v", target, d)
		}
		if d := ts.dial("peer", target); d.OK {
			t.Errorf("another function reached an environment of out at %s: %+v", target, d)
		}
		// Another Owl instance's environment: a different subnet and bridge.
		other := startServer(t, "")
		other.createKitchensink("stranger")
		if d := other.dial("stranger", target); d.OK {
			t.Errorf("a function of another Owl instance reached %s: %+v", target, d)
		}
		if d := other.dial("stranger", outside.String()); !d.OK {
			t.Errorf("the other instance's function cannot reach the outside host: %+v", d)
		}
		wg.Wait()
	})
}

func TestNetworkField(t *testing.T) {
	t.Parallel()
	requireNft(t)
	ts := startServer(t, "")
	ts.createKitchensink("f")
	before := ts.functionsSnapshot()

	for _, bad := range []string{"", "EGRESS", "host", "bridge"} {
		resp, body := ts.createWithNetwork("g", bad)
		wantError(t, resp, body, 400, "InvalidParameterValueException", "~Member must satisfy enum value set: [egress, none]")
		resp, body = ts.setNetwork("f", bad)
		wantError(t, resp, body, 400, "InvalidParameterValueException", "~Member must satisfy enum value set: [egress, none]")
	}
	// A wrong type is not a valid request body.
	resp, body := ts.do(http.MethodPut, "/2015-03-31/functions/f/configuration", []byte(`{"Network":true}`), nil)
	if resp.StatusCode != 400 {
		t.Errorf("Network true: %d %s", resp.StatusCode, body)
	}
	if after := ts.functionsSnapshot(); after != before {
		t.Errorf("rejected requests changed functions:\nbefore %s\nafter  %s", before, after)
	}
	if got := ts.networkOf("f"); got != "egress" {
		t.Errorf("Network after rejected updates: %q", got)
	}

	// Switching retires the environments: the next one has the new network.
	if got := ifNames(ts.interfaces("f")); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("interfaces: %v", got)
	}
	if resp, body := ts.setNetwork("f", "none"); resp.StatusCode != 200 || !strings.Contains(string(body), `"Network":"none"`) {
		t.Fatalf("update to none: %d %s", resp.StatusCode, body)
	}
	if got := ifNames(ts.interfaces("f")); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("interfaces after the update to none: %v", got)
	}
	if resp, body := ts.setNetwork("f", "egress"); resp.StatusCode != 200 || !strings.Contains(string(body), `"Network":"egress"`) {
		t.Fatalf("update to egress: %d %s", resp.StatusCode, body)
	}
	if got := ifNames(ts.interfaces("f")); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("interfaces after the update to egress: %v", got)
	}
	// Other updates keep it; ListFunctions shows it.
	ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("f"), MemorySize: aws.Int32(256)})
	if got := ts.networkOf("f"); got != "egress" {
		t.Errorf("Network after a memory update: %q", got)
	}
	resp, body = ts.do(http.MethodGet, "/2015-03-31/functions", nil, nil)
	if !strings.Contains(string(body), `"Network":"egress"`) {
		t.Errorf("ListFunctions lacks Network: %d %s", resp.StatusCode, body)
	}
	// owl deploy --network, on create and on update.
	dir := functionDir(t)
	owl := func(args ...string) (string, string, int) { return owlCLI(t, ts.URL, args...) }
	if so, se, code := owl("deploy", dir, "--name", "cli", "--runtime", "provided.al2023", "--network", "none"); code != 0 {
		t.Fatalf("owl deploy --network none: exit %d\n%s\n%s", code, so, se)
	}
	if got := ts.networkOf("cli"); got != "none" {
		t.Errorf("owl deploy --network none gave Network %q", got)
	}
	if so, se, code := owl("deploy", dir, "--name", "cli", "--network", "egress"); code != 0 {
		t.Fatalf("owl deploy --network egress: exit %d\n%s\n%s", code, so, se)
	}
	if got := ts.networkOf("cli"); got != "egress" {
		t.Errorf("owl deploy --network egress (update) gave Network %q", got)
	}
	if _, se, code := owl("deploy", dir, "--name", "cli", "--network", "host"); code != 1 || se != "owl: deploy: --network \"host\": want egress or none\n" {
		t.Errorf("owl deploy --network host: exit %d, stderr %q", code, se)
	}
	// The AWS SDK ignores the field it does not know.
	out, err := ts.sdk().GetFunctionConfiguration(context.Background(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("f")})
	if err != nil || aws.ToInt32(out.MemorySize) != 256 {
		t.Errorf("SDK GetFunctionConfiguration: %v %v", out, err)
	}
}

func TestNetworkEgressDisabled(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	dataDir := t.TempDir()
	ts := startServer(t, dataDir, func(c *config.Config) { c.NetworkEgress = false })
	if left := networkLeft(t, instanceOf(t, dataDir)); len(left) > 0 {
		t.Errorf("egress disabled, yet the instance has %v", left)
	}
	ts.createKitchensink("f")
	if got := ts.networkOf("f"); got != "none" {
		t.Errorf("default Network with egress disabled: %q, want none", got)
	}
	if got := ifNames(ts.interfaces("f")); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("interfaces: %v, want only lo", got)
	}
	const msg = "Network egress is disabled on this Owl server (OWL_NETWORK_EGRESS=false); the only allowed value is none."
	before := ts.functionsSnapshot()
	resp, body := ts.createWithNetwork("g", "egress")
	wantError(t, resp, body, 400, "InvalidParameterValueException", msg)
	resp, body = ts.setNetwork("f", "egress")
	wantError(t, resp, body, 400, "InvalidParameterValueException", msg)
	if after := ts.functionsSnapshot(); after != before {
		t.Errorf("rejected requests changed functions:\nbefore %s\nafter  %s", before, after)
	}
	if resp, body := ts.createWithNetwork("g", "none"); resp.StatusCode != http.StatusCreated {
		t.Errorf("Network none with egress disabled: %d %s", resp.StatusCode, body)
	}
}

// ifindex is the interface index of a host link, 0 when there is none.
func ifindex(name string) int {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0
	}
	return i.Index
}

// TestNetworkAfterCrash: a kill -9 leaves the bridge and the nftables
// table (and possibly veths); the next start replaces and removes them,
// and egress works again; a clean stop then leaves nothing.
func TestNetworkAfterCrash(t *testing.T) {
	t.Parallel()
	requireNft(t)
	outside, _ := outsideHost(t)
	dataDir := t.TempDir()
	inst := instanceOf(t, dataDir)
	names := sandbox.NetworkNamesOf(inst)
	t.Cleanup(func() {
		// Only if the test failed between the crash and the restart.
		exec.Command("ip", "link", "del", names.Bridge).Run()
		exec.Command("nft", "delete", "table", "inet", names.Table).Run()
	})
	p := startOwl(t, dataDir)
	p.createKitchensink("net")
	if d := p.dial("net", outside.String()); !d.OK {
		t.Fatalf("before the crash: %+v", d)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.waitExit(t, 10*time.Second)
	left := networkLeft(t, inst)
	t.Logf("left by the crash: %v", left)
	if !slices.Contains(left, "link "+names.Bridge) || !slices.Contains(left, "nftables table inet "+names.Table) {
		t.Fatalf("after kill -9: %v; want the bridge and the table left (else this test proves nothing)", left)
	}
	staleBridge := ifindex(names.Bridge)
	// A veth whose sandbox died before it could be deleted.
	stale := names.VethPrefix + "fffff0"
	ipCmd(t, "link", "add", stale, "type", "veth", "peer", "name", "owtp"+names.Table[4:])
	t.Cleanup(func() { exec.Command("ip", "link", "del", stale).Run() })

	p = startOwl(t, dataDir)
	if idx := ifindex(names.Bridge); idx == 0 || idx == staleBridge {
		t.Errorf("bridge %s after the restart: index %d, the crashed run's was %d", names.Bridge, idx, staleBridge)
	}
	if ifindex(stale) != 0 {
		t.Errorf("stale veth %s survived the restart", stale)
	}
	if d := p.dial("net", outside.String()); !d.OK {
		t.Errorf("after the restart: %+v", d)
	}
	p.sigterm(t)
	p.wantCleanStop(t)
}

// TestNetworkEgressStoredThenDisabled: a function stored with egress on a
// server restarted with egress disabled is not run without it.
func TestNetworkEgressStoredThenDisabled(t *testing.T) {
	t.Parallel()
	requireNft(t)
	dataDir := t.TempDir()
	ts := startServer(t, dataDir)
	ts.createKitchensink("f")
	ts.stop()
	ts = startServer(t, dataDir, func(c *config.Config) { c.NetworkEgress = false })
	if got := ts.networkOf("f"); got != "egress" {
		t.Errorf("stored Network after the restart: %q", got)
	}
	resp, body := ts.rawInvoke("f/invocations", `{}`, nil)
	wantError(t, resp, body, http.StatusConflict, "ResourceConflictException",
		"The function f has Network egress, which this Owl server has disabled (OWL_NETWORK_EGRESS=false): enable egress, or update the function to Network none.")
	if resp, body := ts.setNetwork("f", "none"); resp.StatusCode != http.StatusOK {
		t.Fatalf("update to none: %d %s", resp.StatusCode, body)
	}
	if r := ts.invoke("f", `{}`); r.funcErr != "" {
		t.Errorf("invoke after the update to none: %+v", r)
	}
}
