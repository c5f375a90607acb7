package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// NetworkNames are the host-side names of an instance's egress network.
// They derive from the instance alone, so that a restart after a crash
// finds what the crash left, and they fit Linux's 15-byte interface names
// whatever the instance name's length.
type NetworkNames struct {
	// Bridge is the instance's bridge, e.g. "ow3fa91cbr".
	Bridge string
	// VethPrefix starts the host end of every sandbox's veth pair, e.g.
	// "ow3fa91cv" (followed by up to 6 hex digits).
	VethPrefix string
	// Table is the instance's nftables table, in the inet family.
	Table string
}

// NetworkNamesOf returns the network names of an instance.
func NetworkNamesOf(instance string) NetworkNames {
	sum := sha256.Sum256([]byte(instance))
	h := hex.EncodeToString(sum[:3])
	return NetworkNames{
		Bridge:     "ow" + h + "br",
		VethPrefix: "ow" + h + "v",
		Table:      "owl_" + h,
	}
}

// vethName is the host end of the veth pair number seq of an instance:
// VethPrefix and seq in hex, wrapping after 2^24 pairs (the pair that
// held the name then is long gone).
func (n NetworkNames) vethName(seq uint64) string {
	return fmt.Sprintf("%s%x", n.VethPrefix, seq&0xffffff)
}

// isVeth reports whether an interface name is a veth host end of n.
func (n NetworkNames) isVeth(name string) bool {
	rest, ok := strings.CutPrefix(name, n.VethPrefix)
	return ok && rest != "" && len(rest) <= 6 && strings.Trim(rest, "0123456789abcdef") == ""
}

// instanceSubnet picks the subnet of an instance in pool: the first of
// pool's /InstanceSubnetBits subnets (the whole pool when it is smaller),
// starting at slot start and wrapping, that overlaps none of used. ok is
// false when every subnet is taken.
func instanceSubnet(pool netip.Prefix, start uint32, used []netip.Prefix) (netip.Prefix, bool) {
	bits := max(pool.Bits(), InstanceSubnetBits)
	n := uint32(1) << (bits - pool.Bits())
	base := addrUint32(pool.Addr())
	for i := range n {
		slot := (start + i) % n
		cand := netip.PrefixFrom(uint32Addr(base+slot<<(32-bits)), bits)
		free := true
		for _, u := range used {
			if u.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, true
		}
	}
	return netip.Prefix{}, false
}

// hostAddr is host number i of subnet (0 is the subnet's own address).
func hostAddr(subnet netip.Prefix, i uint32) netip.Addr {
	return uint32Addr(addrUint32(subnet.Addr()) + i)
}

// hostCount is how many host numbers subnet has, without the subnet
// address and the broadcast address.
func hostCount(subnet netip.Prefix) uint32 {
	return uint32(1)<<(32-subnet.Bits()) - 2
}

func addrUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uint32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
