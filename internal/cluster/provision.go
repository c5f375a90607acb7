package cluster

import (
	"cmp"
	"hash/fnv"
	"sort"

	"github.com/owl-project/owl/internal/registry"
)

// ProvisionShare is how many of the total provisioned environments of fn
// this node keeps. The total is split evenly over the usable workers that
// run fn (healthy, not draining, with its runtime), in the order of their
// names; the remainder goes to the nodes from a place a hash of fn's name
// and version picks, so that one node does not carry every function's
// remainder. A node outside the split keeps none. When a worker dies or
// drains it drops out of the split, and at their next reconcile (every
// second) the others start what it held.
func (m *Membership) ProvisionShare(fn registry.Function, total int) int {
	var names []string
	for _, n := range m.usable() {
		if runs(n, fn) {
			names = append(names, n.Name)
		}
	}
	return shareOf(total, names, m.self.Name, fn.Name+":"+cmp.Or(fn.Version, registry.Latest))
}

// shareOf splits total over nodes (any order) for key and returns self's
// part: every node total/len, and one more for len%total of them, taken
// in name order from an offset the key's hash picks.
func shareOf(total int, nodes []string, self, key string) int {
	sort.Strings(nodes)
	i := sort.SearchStrings(nodes, self)
	if total <= 0 || i == len(nodes) || nodes[i] != self {
		return 0
	}
	k := len(nodes)
	h := fnv.New32a()
	h.Write([]byte(key))
	offset := int(h.Sum32() % uint32(k))
	share := total / k
	if (i-offset+k)%k < total%k {
		share++
	}
	return share
}

// ProvisionedReady counts the provisioned environments of name's version
// the usable nodes advertise: a provisioned concurrency config is ready
// when the cluster holds them all, wherever they run.
func (m *Membership) ProvisionedReady(name, version string) int {
	key := name + ":" + cmp.Or(version, registry.Latest)
	ready := 0
	for _, n := range m.usable() {
		ready += n.Environments[key]["provisioned"]
	}
	return ready
}
