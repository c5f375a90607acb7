package sandbox

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNetworkNames(t *testing.T) {
	for _, inst := range []string{"a", "3fa91c0d", "test-123456-abcdef01", strings.Repeat("x", 128)} {
		n := NetworkNamesOf(inst)
		longest := n.vethName(0xffffff)
		for _, name := range []string{n.Bridge, longest, n.vethName(1)} {
			if len(name) > 15 {
				t.Errorf("instance %q: interface name %q is longer than 15 bytes", inst, name)
			}
		}
		if !n.isVeth(longest) || !n.isVeth(n.vethName(0)) || n.isVeth(n.Bridge) || n.isVeth(n.VethPrefix) ||
			n.isVeth(n.VethPrefix+"xyz") || n.isVeth(n.VethPrefix+"1234567") {
			t.Errorf("instance %q: isVeth misjudges names", inst)
		}
		if n.vethName(1<<24+5) != n.vethName(5) {
			t.Errorf("veth numbers do not wrap at 2^24")
		}
	}
	if NetworkNamesOf("a") == NetworkNamesOf("b") {
		t.Error("two instances share network names")
	}
	if a1, a2 := NetworkNamesOf("a"), NetworkNamesOf("a"); a1 != a2 {
		t.Error("network names are not stable")
	}
}

func TestInstanceSubnet(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		pool  string
		start uint32
		used  []netip.Prefix
		want  string // "" when none is free
	}{
		{"10.213.0.0/16", 0, nil, "10.213.0.0/22"},
		{"10.213.0.0/16", 5, nil, "10.213.20.0/22"},
		{"10.213.0.0/16", 64 + 5, nil, "10.213.20.0/22"}, // wraps around the 64 slots
		{"10.213.0.0/16", 5, []netip.Prefix{p("10.213.21.0/24")}, "10.213.24.0/22"},
		{"10.213.0.0/16", 63, []netip.Prefix{p("10.213.252.0/24")}, "10.213.0.0/22"},
		{"10.213.0.0/16", 0, []netip.Prefix{p("10.0.0.0/8")}, ""},
		{"192.168.7.0/24", 9, nil, "192.168.7.0/24"}, // smaller than a /22: all of it
		{"192.168.7.0/24", 0, []netip.Prefix{p("192.168.7.0/24")}, ""},
	}
	for _, tt := range tests {
		got, ok := instanceSubnet(p(tt.pool), tt.start, tt.used)
		if tt.want == "" {
			if ok {
				t.Errorf("instanceSubnet(%s, %d, %v) = %s, want none free", tt.pool, tt.start, tt.used, got)
			}
			continue
		}
		if !ok || got != p(tt.want) {
			t.Errorf("instanceSubnet(%s, %d, %v) = %s %v, want %s", tt.pool, tt.start, tt.used, got, ok, tt.want)
		}
	}
	s := p("10.213.4.0/22")
	if hostAddr(s, 1) != netip.MustParseAddr("10.213.4.1") || hostAddr(s, hostCount(s)) != netip.MustParseAddr("10.213.7.254") {
		t.Errorf("hostAddr/hostCount of %s: %s .. %s", s, hostAddr(s, 1), hostAddr(s, hostCount(s)))
	}
}

func TestConfigEgressPool(t *testing.T) {
	for pool, ok := range map[string]bool{
		"10.213.0.0/16": true, "100.64.0.0/10": true, "192.168.1.0/30": true,
		"10.213.0.1/16": false, "192.168.1.0/31": false, "fd00::/64": false,
	} {
		cfg := Config{Instance: "x", RootDir: "/tmp/x", Egress: &EgressConfig{Pool: netip.MustParsePrefix(pool)}}
		if err := cfg.validate(); (err == nil) != ok {
			t.Errorf("pool %s: validate() = %v, want ok=%v", pool, err, ok)
		}
	}
	if err := (Config{Instance: "x", RootDir: "/tmp/x", Egress: &EgressConfig{}}).validate(); err == nil {
		t.Error("an empty pool passes validate")
	}
}
