package lambdawire

import "time"

// Node is one Owl node of a cluster as it advertises itself to the others
// (the KV bucket OWL_NODES, refreshed every second) and as GET
// /owl/v1/nodes lists it.
type Node struct {
	Name string `json:"name"`
	// ID is new at every start of the node.
	ID   string `json:"id"`
	Role string `json:"role"`
	// Version is the node's Owl version; Protocol the version of the
	// forwarding protocol it speaks (nodes of another are refused).
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
	// Runtimes are the runtimes the node runs (empty on an api node).
	Runtimes []string `json:"runtimes,omitempty"`
	// MemoryMB is the memory environments may reserve (budget ×
	// overcommit), MemoryFreeMB what of it is not reserved.
	MemoryMB     int `json:"memory_mb"`
	MemoryFreeMB int `json:"memory_free_mb"`
	// ConcurrencyLimit is the invocations it runs at once, Inflight those
	// running.
	ConcurrencyLimit int `json:"concurrency_limit"`
	Inflight         int `json:"inflight"`
	// Environments counts its environments by "function:version", then by
	// state (starting, busy, idle, frozen; provisioned).
	Environments map[string]map[string]int `json:"environments,omitempty"`
	// Draining: it takes no new placements (owl nodes drain).
	Draining bool `json:"draining,omitempty"`
	// Problems are the checks of its /healthz that fail (disk, sandbox,
	// store, …): a node with any is unhealthy and not placed on.
	Problems []string `json:"problems,omitempty"`
	// Health is what the node answering the listing makes of it: ok,
	// draining, unhealthy (Problems), lost (not heard from in 3 s) or
	// incompatible (another protocol: refused); only ok nodes are placed
	// on.
	Health  string    `json:"health"`
	Started time.Time `json:"started"`
	// LastSeenMs is how long ago the answering node last heard from it.
	LastSeenMs int64 `json:"last_seen_ms"`
}

// NodeList is GET /owl/v1/nodes's answer.
type NodeList struct {
	Nodes []Node `json:"nodes"`
}

// DrainRequest is POST /owl/v1/nodes/{name}/drain's body: Drain false
// puts a drained node back in service.
type DrainRequest struct {
	Drain bool `json:"drain"`
}
