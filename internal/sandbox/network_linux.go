package sandbox

// The egress network of an instance (Config.Egress): one bridge with the
// gateway address of the instance's subnet, one veth pair per sandbox with
// Spec.Egress (host end an isolated port of the bridge, peer eth0 inside
// the sandbox), and one nftables table that forwards and masquerades what
// leaves the bridge while keeping sandboxes away from the host and from
// one another. docs/network.md explains the model.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoEgress wraps the reasons a host cannot give sandboxes egress.
var ErrNoEgress = errors.New("network egress is unavailable on this host")

// sandboxIface is the name of the veth peer inside a sandbox.
const sandboxIface = "eth0"

// network is the egress network of a Manager. Its methods are safe for
// concurrent use.
type network struct {
	names   NetworkNames
	pool    netip.Prefix
	subnet  netip.Prefix // this instance's part of pool
	gateway netip.Addr   // the bridge's address: host number 1 of subnet
	bridge  int          // the bridge's interface index
	nft     string       // path of the nft command
	log     *slog.Logger

	mu    sync.Mutex
	used  map[uint32]bool // guarded by mu: host numbers of subnet in use
	next  uint32          // guarded by mu: where the next address search starts
	seq   uint64          // guarded by mu: numbers veth names
	veths map[string]bool // guarded by mu: host ends of live veth pairs

	reaping sync.WaitGroup // detached veth pairs not known to be gone yet
}

// vethLink is the veth pair of one sandbox.
type vethLink struct {
	host string     // host end's name (a port of the bridge)
	addr netip.Addr // eth0's address inside the sandbox
	num  uint32     // addr's host number in the subnet
}

// lockFile serializes the subnet choice of the Owl instances of a host
// (across processes), which read the host's addresses and then add one.
func lockFile() string {
	if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
		return "/run/owl-network.lock"
	}
	return filepath.Join(os.TempDir(), "owl-network.lock")
}

// nftName and nftPaths are where findNft looks (variables for tests).
var (
	nftName  = "nft"
	nftPaths = []string{"/usr/sbin/nft", "/sbin/nft"}
)

// findNft locates the nft command: on PATH, else where Debian and most
// distributions install it (a service's PATH may lack the sbin dirs).
func findNft() (string, error) {
	if p, err := exec.LookPath(nftName); err == nil {
		return p, nil
	}
	for _, p := range nftPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: the nft command (package nftables) is not installed; "+
		"install it (Debian/Ubuntu: apt-get install nftables) or disable egress (OWL_NETWORK_EGRESS=false)", ErrNoEgress)
}

// setupNetwork builds the egress network of an instance, replacing what a
// previous run of the same instance left (its bridge and nftables table;
// stale veths go in cleanupStale). On error nothing is left.
func setupNetwork(instance string, cfg *EgressConfig, log *slog.Logger) (_ *network, err error) {
	nft, err := findNft()
	if err != nil {
		return nil, err
	}
	n := &network{
		names: NetworkNamesOf(instance),
		pool:  cfg.Pool,
		nft:   nft,
		log:   log,
		used:  map[uint32]bool{},
		veths: map[string]bool{},
	}
	defer func() {
		if err != nil {
			n.teardown()
		}
	}()
	if err := n.createBridge(instance); err != nil {
		return nil, err
	}
	if err := enableForwarding(log); err != nil {
		return nil, err
	}
	if err := n.runNft(n.ruleset()); err != nil {
		return nil, fmt.Errorf("%w: installing the nftables rules: %w", ErrNoEgress, err)
	}
	log.Debug("egress network ready", "bridge", n.names.Bridge, "subnet", n.subnet, "table", "inet "+n.names.Table)
	return n, nil
}

// createBridge picks a free subnet and creates the bridge with the
// gateway address, holding the host-wide lock.
func (n *network) createBridge(instance string) error {
	lf, err := os.OpenFile(lockFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("egress network: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("egress network: locking %s: %w", lf.Name(), err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)

	c, err := dialNetlink()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNoEgress, err)
	}
	defer c.Close()
	// A bridge of this instance is left by a crashed run: its subnet is
	// free for the taking again.
	if err := c.delLink(n.names.Bridge); err == nil {
		n.log.Warn("removed the network bridge left by a previous run", "bridge", n.names.Bridge)
	} else if !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("egress network: removing stale bridge %s: %w", n.names.Bridge, err)
	}

	used, err := hostPrefixes()
	if err != nil {
		return fmt.Errorf("egress network: %w", err)
	}
	sum := sha256.Sum256([]byte(instance))
	subnet, ok := instanceSubnet(n.pool, binary.BigEndian.Uint32(sum[4:8]), used)
	if !ok {
		return fmt.Errorf("%w: no free /%d left in the network pool %s (OWL_NETWORK_CIDR): every one overlaps an address of the host",
			ErrNoEgress, max(n.pool.Bits(), InstanceSubnetBits), n.pool)
	}
	n.subnet = subnet
	n.gateway = hostAddr(subnet, 1)
	n.used[1] = true
	n.next = 2

	if err := c.newBridge(n.names.Bridge); err != nil {
		return fmt.Errorf("%w: creating bridge %s: %w", ErrNoEgress, n.names.Bridge, err)
	}
	if n.bridge, err = ifIndex(n.names.Bridge); err != nil {
		return fmt.Errorf("egress network: %w", err)
	}
	// No IPv6 on the bridge: sandboxes get IPv4 only, and the host must
	// not be reachable from them over link-local IPv6 either (the rules
	// reject that too).
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+n.names.Bridge+"/disable_ipv6", []byte("1"), 0)
	if err := c.addAddr(n.bridge, netip.PrefixFrom(n.gateway, subnet.Bits())); err != nil {
		return fmt.Errorf("egress network: address of bridge %s: %w", n.names.Bridge, err)
	}
	if err := c.setUp(n.bridge); err != nil {
		return fmt.Errorf("egress network: bringing up bridge %s: %w", n.names.Bridge, err)
	}
	return nil
}

// hostPrefixes lists the networks of the host's IPv4 addresses.
func hostPrefixes() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil {
			continue
		}
		ones, _ := ipn.Mask.Size()
		addr, _ := netip.AddrFromSlice(ipn.IP.To4())
		out = append(out, netip.PrefixFrom(addr, ones).Masked())
	}
	return out, nil
}

// enableForwarding turns on IPv4 forwarding, host-wide: the kernel routes
// between interfaces only with it (Docker and libvirt do the same). It is
// left on at exit: other instances or software may rely on it by then.
func enableForwarding(log *slog.Logger) error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("%w: reading %s: %w", ErrNoEgress, p, err)
	}
	if string(bytes.TrimSpace(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("%w: enabling IPv4 forwarding: %w", ErrNoEgress, err)
	}
	log.Info("enabled IPv4 forwarding (net.ipv4.ip_forward=1) for sandbox egress")
	return nil
}

// ruleset is the instance's nftables table, replacing any previous one in
// one transaction (declaring the table first makes the delete succeed
// when there is none). Rejections answer at once (an ICMP error, seen as
// "no route to host") instead of making functions wait for a timeout.
func (n *network) ruleset() string {
	var b strings.Builder
	t, br := n.names.Table, n.names.Bridge
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\n", t, t)
	fmt.Fprintf(&b, `table inet %[1]s {
	# Nothing from the sandboxes reaches the host itself: not Owl's API, not
	# NATS, not any other service on any address of the host.
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "%[2]s" ct state established,related accept
		iifname "%[2]s" reject with icmpx admin-prohibited
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		# Replies only towards the sandboxes: nothing outside (nor another
		# sandbox, when bridged traffic is filtered) opens a connection to one.
		oifname "%[2]s" ct state established,related accept
		oifname "%[2]s" reject with icmpx admin-prohibited
		# IPv4 only; not the sandboxes of other instances, not link-local
		# addresses (cloud metadata services).
		iifname "%[2]s" meta nfproto != ipv4 reject with icmpx admin-prohibited
		iifname "%[2]s" ip daddr { %[3]s, 169.254.0.0/16 } reject with icmpx admin-prohibited
		# Only the subnet's own addresses leave (no spoofed sources).
		iifname "%[2]s" ip saddr != %[4]s reject with icmpx admin-prohibited
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[4]s oifname != "%[2]s" masquerade
	}
}
`, t, br, n.pool, n.subnet)
	return b.String()
}

func (n *network) runNft(script string) error {
	cmd := exec.Command(n.nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -f: %w: %s", n.nft, err, bytes.TrimSpace(out))
	}
	return nil
}

// attach creates the veth pair of a sandbox whose init is process pid
// (started, not reaped): the host end a port of the bridge, isolated and
// up; eth0 inside, down and without address until configureInside.
func (n *network) attach(pid int) (_ *vethLink, err error) {
	v, err := n.reserve()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.release(v)
		}
	}()
	c, err := dialNetlink()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.newVeth(v.host, n.bridge, sandboxIface, pid); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", v.host, err)
	}
	idx, err := ifIndex(v.host)
	if err == nil {
		err = c.isolatePort(idx)
	}
	if err != nil {
		_ = c.delLink(v.host)
		return nil, fmt.Errorf("isolating bridge port %s: %w", v.host, err)
	}
	return v, nil
}

// configureInside gives the sandbox's eth0 its address and default route.
// It runs on a thread inside the sandbox's network namespace.
func (n *network) configureInside(v *vethLink) error {
	c, err := dialNetlink()
	if err != nil {
		return err
	}
	defer c.Close()
	idx, err := ifIndex(sandboxIface)
	if err != nil {
		return fmt.Errorf("configuring %s: %w", sandboxIface, err)
	}
	if err := c.setUp(idx); err != nil {
		return fmt.Errorf("bringing up %s: %w", sandboxIface, err)
	}
	if err := c.addAddr(idx, netip.PrefixFrom(v.addr, n.subnet.Bits())); err != nil {
		return fmt.Errorf("address of %s: %w", sandboxIface, err)
	}
	if err := c.addDefaultRoute(idx, n.gateway); err != nil {
		return fmt.Errorf("default route of %s: %w", sandboxIface, err)
	}
	return nil
}

// reserve takes a free address and a veth name.
func (n *network) reserve() (*vethLink, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	hosts := hostCount(n.subnet)
	for range hosts {
		num := n.next
		n.next = n.next%hosts + 1
		if n.used[num] {
			continue
		}
		n.used[num] = true
		var name string
		for {
			n.seq++
			if name = n.names.vethName(n.seq); !n.veths[name] {
				break
			}
		}
		n.veths[name] = true
		return &vethLink{host: name, addr: hostAddr(n.subnet, num), num: num}, nil
	}
	return nil, fmt.Errorf("no free address left in %s: %d sandboxes with egress at once", n.subnet, hosts-1)
}

func (n *network) release(v *vethLink) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.used, v.num)
	delete(n.veths, v.host)
}

// detach frees a sandbox's address and makes sure its veth pair goes,
// without making the caller wait: the pair dies with the sandbox's
// network namespace, which the kernel tears down in the background,
// batched with others; deleting it here instead costs ~30 ms (the
// kernel's RCU waits, measured in BenchmarkCreateDestroyNetwork). Its
// process must be dead. A pair still there after vethGrace is deleted
// (something held the namespace); teardown waits for all of this.
func (n *network) detach(v *vethLink) {
	n.release(v)
	n.reaping.Go(func() {
		deadline := time.Now().Add(vethGrace)
		for linkPresent(v.host) {
			if time.Now().After(deadline) {
				if err := n.deleteLink(v.host); err != nil {
					n.log.Warn("deleting a sandbox veth", "veth", v.host, "err", err)
				}
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// vethGrace is how long detach lets the kernel remove a veth pair.
const vethGrace = 2 * time.Second

func linkPresent(name string) bool {
	_, err := os.Lstat("/sys/class/net/" + name)
	return err == nil
}

// deleteLink deletes a link of the host; one already gone is fine.
func (n *network) deleteLink(name string) error {
	c, err := dialNetlink()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.delLink(name); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// cleanupStale deletes the veths of this instance that no live sandbox
// owns: a crashed run's, whose sandboxes are being killed.
func (n *network) cleanupStale() (int, error) {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return 0, fmt.Errorf("listing network interfaces: %w", err)
	}
	c, err := dialNetlink()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	removed := 0
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !n.names.isVeth(name) {
			continue
		}
		n.mu.Lock()
		mine := n.veths[name]
		n.mu.Unlock()
		if mine {
			continue
		}
		if err := c.delLink(name); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("deleting stale veth %s: %w", name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// teardown waits until the veth pairs of destroyed sandboxes are gone,
// then removes the bridge and the nftables table.
func (n *network) teardown() error {
	n.reaping.Wait()
	var errs []error
	if c, err := dialNetlink(); err != nil {
		errs = append(errs, err)
	} else {
		if err := c.delLink(n.names.Bridge); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %w", n.names.Bridge, err))
		}
		c.Close()
	}
	t := n.names.Table
	if err := n.runNft(fmt.Sprintf("table inet %s\ndelete table inet %s\n", t, t)); err != nil {
		errs = append(errs, fmt.Errorf("deleting nftables table %s: %w", t, err))
	}
	return errors.Join(errs...)
}
