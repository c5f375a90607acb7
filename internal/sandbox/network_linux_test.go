package sandbox

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/testkit"
)

// defaultTestPool is Owl's default pool (internal/config).
var defaultTestPool = netip.MustParsePrefix("10.213.0.0/16")

// newEgressManager is newTestManager with the egress network; it skips
// when the host has no nft.
func newEgressManager(t testing.TB, spares int) *Manager {
	t.Helper()
	requireSandboxes(t)
	if _, err := findNft(); err != nil {
		testkit.Skip(t, err)
	}
	m := newTestManagerWith(t, Config{Spares: spares, Egress: &EgressConfig{Pool: defaultTestPool}})
	names := m.net.names
	t.Cleanup(func() {
		// Registered after newTestManagerWith's cleanup: runs before it,
		// so Close here; the other Close is a no-op.
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if linkExists(names.Bridge) {
			t.Errorf("bridge %s still exists after Close", names.Bridge)
		}
		if v := links(names.isVeth); len(v) > 0 {
			t.Errorf("veths %v still exist after Close", v)
		}
		if nftTableExists(t, names.Table) {
			t.Errorf("nftables table %s still exists after Close", names.Table)
		}
	})
	return m
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func links(match func(string) bool) []string {
	ents, _ := os.ReadDir("/sys/class/net")
	var out []string
	for _, e := range ents {
		if match(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

func nftTableExists(t testing.TB, table string) bool {
	out, err := exec.Command("nft", "list", "tables", "inet").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v\n%s", err, out)
	}
	return slices.Contains(strings.Fields(string(out)), table)
}

// hostIPv4 is a non-loopback IPv4 address of the host (not a bridge of
// Owl's), or the zero Addr.
func hostIPv4() netip.Addr {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, "ow") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				addr, _ := netip.AddrFromSlice(ipn.IP.To4())
				return addr
			}
		}
	}
	return netip.Addr{}
}

func TestEgressSandbox(t *testing.T) {
	m := newEgressManager(t, 1)
	code := probeCodeDir(t)
	if !linkExists(m.net.names.Bridge) || !nftTableExists(t, m.net.names.Table) {
		t.Fatalf("bridge %s or table %s missing", m.net.names.Bridge, m.net.names.Table)
	}
	if !defaultTestPool.Contains(m.net.gateway) || m.net.subnet.Bits() != InstanceSubnetBits {
		t.Errorf("subnet %s gateway %s: not a /%d of %s", m.net.subnet, m.net.gateway, InstanceSubnetBits, defaultTestPool)
	}

	// A listener on every host address: the sandbox must reach none.
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	targets := []netip.Addr{m.net.gateway}
	if a := hostIPv4(); a.IsValid() {
		targets = append(targets, a)
	}
	for _, egress := range []bool{true, false} {
		for _, target := range targets {
			spec := testSpec(t, code, "facts")
			spec.Egress = egress
			spec.Env = append(spec.Env, "HOST_ADDR="+netip.AddrPortFrom(target, uint16(port)).String())
			sb := create(t, m, spec)
			var f Facts
			out := readOutput(t, sb)
			if err := json.Unmarshal([]byte(out), &f); err != nil {
				t.Fatalf("decoding probe output: %v\n%s", err, out)
			}
			want := []string{"lo"}
			if egress {
				want = append(want, sandboxIface)
			}
			if !slices.Equal(f.Interfaces, want) {
				t.Errorf("egress %v: interfaces %v, want %v", egress, f.Interfaces, want)
			}
			if f.HostDial == "" {
				t.Errorf("egress %v: the sandbox reached the host at %s:%d", egress, target, port)
			}
			t.Logf("egress %v: dialing the host at %s: %s", egress, target, f.HostDial)
			var veth string
			if sb.veth != nil {
				veth = sb.veth.host
				if !linkExists(veth) {
					t.Errorf("veth %s missing while the sandbox lives", veth)
				}
			}
			waitDone(t, sb)
			if err := sb.Destroy(); err != nil {
				t.Fatal(err)
			}
			if veth != "" {
				waitFor(t, "the veth of a destroyed sandbox gone", func() bool { return !linkExists(veth) })
			}
		}
	}
	m.net.mu.Lock()
	used := len(m.net.used)
	m.net.mu.Unlock()
	if used != 1 {
		t.Errorf("%d addresses in use after every sandbox was destroyed, want 1 (the gateway)", used)
	}
}

func TestEgressNeedsConfig(t *testing.T) {
	m := newTestManager(t)
	spec := testSpec(t, probeCodeDir(t), "facts")
	spec.Egress = true
	if _, err := m.Create(t.Context(), spec); !errors.Is(err, ErrNoEgress) {
		t.Errorf("Create with Egress on a Manager without: %v, want ErrNoEgress", err)
	}
}

// TestStaleNetwork: a new Manager of an instance replaces the bridge and
// the table a crashed one left, and CleanupStale removes its veths.
func TestStaleNetwork(t *testing.T) {
	requireSandboxes(t)
	if _, err := findNft(); err != nil {
		testkit.Skip(t, err)
	}
	inst := randomName("test")
	names := NetworkNamesOf(inst)
	stale, err := setupNetwork(inst, &EgressConfig{Pool: defaultTestPool}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stale.teardown() })
	// A leftover veth, as a sandbox killed mid-way could leave.
	leftover := names.vethName(0xabc)
	if out, err := exec.Command("ip", "link", "add", leftover, "type", "veth", "peer", "name", leftover+"p").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", leftover).Run() })
	oldIndex, _ := ifIndex(names.Bridge)

	m, err := NewManager(Config{Instance: inst, RootDir: t.TempDir(), Logger: testLogger(t), Egress: &EgressConfig{Pool: defaultTestPool}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if idx, _ := ifIndex(names.Bridge); idx == oldIndex {
		t.Errorf("bridge %s is still the stale one (index %d)", names.Bridge, idx)
	}
	out, _ := exec.Command("nft", "list", "table", "inet", names.Table).CombinedOutput()
	if n := strings.Count(string(out), "chain input"); n != 1 {
		t.Errorf("table %s has %d input chains, want 1:\n%s", names.Table, n, out)
	}
	if _, err := m.CleanupStale(t.Context()); err != nil {
		t.Fatal(err)
	}
	if linkExists(leftover) {
		t.Errorf("stale veth %s survived CleanupStale", leftover)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(names.Bridge) || nftTableExists(t, names.Table) {
		t.Errorf("bridge or table left after Close")
	}
}

// BenchmarkCreateDestroyNetwork is BenchmarkCreateDestroy on a Manager
// with the egress network, for sandboxes without ("none") and with
// ("egress") a veth pair: the difference is what egress costs a sandbox.
func BenchmarkCreateDestroyNetwork(b *testing.B) {
	for _, spares := range []int{0, 1} {
		for _, egress := range []bool{false, true} {
			name := map[bool]string{false: "fresh", true: "spare"}[spares > 0] + "/" + map[bool]string{false: "none", true: "egress"}[egress]
			b.Run(name, func(b *testing.B) {
				benchCreateDestroy(b, newEgressManager(b, spares), spares, Spec{Egress: egress})
			})
		}
	}
}

// TestEgressUnavailable: without nft, NewManager with egress fails, says
// how to fix it and leaves nothing.
func TestEgressUnavailable(t *testing.T) {
	requireSandboxes(t)
	name, paths := nftName, nftPaths
	nftName, nftPaths = "owl-no-such-nft", []string{"/nonexistent/nft"}
	defer func() { nftName, nftPaths = name, paths }()
	inst := randomName("test")
	_, err := NewManager(Config{Instance: inst, RootDir: t.TempDir(), Egress: &EgressConfig{Pool: defaultTestPool}})
	if !errors.Is(err, ErrNoEgress) || !strings.Contains(err.Error(), "apt-get install nftables") ||
		!strings.Contains(err.Error(), "OWL_NETWORK_EGRESS=false") {
		t.Errorf("NewManager without nft: %v", err)
	}
	if linkExists(NetworkNamesOf(inst).Bridge) {
		t.Errorf("bridge left after the failed NewManager")
	}
}
