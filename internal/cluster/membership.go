// Package cluster owns what makes Owl nodes sharing one NATS a single
// platform: the node registry (each node's record in the KV bucket
// OWL_NODES, refreshed every second, and the view every node keeps of
// the others), placement (which node runs an invocation: an idle warm
// environment of its version first, then the most free memory; never a
// draining or lost node, nor one without the function's runtime), and
// forwarding an invocation to the chosen node with NATS request/reply,
// failing it fast when that node dies (docs/cluster.md).
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// Protocol is the version of what nodes tell each other (the record in
// OWL_NODES, the forwarded invocation); a node of another is refused.
const Protocol = 1

// Bucket is the KV bucket nodes advertise themselves in, one key a node
// name.
const Bucket = "OWL_NODES"

const (
	// HeartbeatEvery is how often a node rewrites its record.
	HeartbeatEvery = time.Second
	// LostAfter is how long a node may go unheard before it is lost: no
	// new work goes to it, and its in-flight invocations fail.
	LostAfter = 3 * time.Second
	// forgetAfter is how long a lost node stays listed (the bucket's
	// MaxAge removes its record then too).
	forgetAfter = 30 * time.Second
)

// Health values of a listed node.
const (
	HealthOK           = "ok"
	HealthDraining     = "draining"
	HealthUnhealthy    = "unhealthy"
	HealthLost         = "lost"
	HealthIncompatible = "incompatible"
)

// Self describes this node; State fills in what changes (capacity,
// environments) at each heartbeat.
type Self struct {
	Name, Role, Version string
	// Runtimes are the runtimes it runs (nil: none, an api node).
	Runtimes []string
	// State fills the record's capacity and environments; nil on a node
	// without environments.
	State func(n *lambdawire.Node)
}

// Membership is this node's place in the cluster: it advertises this
// node and keeps the view of every node's latest record.
type Membership struct {
	kv     jetstream.KeyValue
	nc     *nats.Conn
	self   Self
	id     string
	start  time.Time
	logger *slog.Logger

	draining atomic.Bool
	mu       sync.Mutex
	nodes    map[string]*seen // by name
	refused  map[string]bool  // ids already logged as incompatible
	lost     map[string]bool  // ids known to be gone (no responders)
	ctl      *nats.Subscription

	beat    chan struct{} // a heartbeat now (drain)
	cancel  context.CancelFunc
	stopped chan struct{}
}

// seen is a node's latest record and when this node received it.
type seen struct {
	node lambdawire.Node
	at   time.Time
}

// Join creates the bucket if needed, refuses a name a live node of
// another identity holds, writes this node's first record and starts
// advertising it and watching the others'.
func Join(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, self Self, logger *slog.Logger) (*Membership, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Owl's nodes: each node's record, rewritten every second",
		History: 1, TTL: forgetAfter, Storage: jetstream.MemoryStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the node registry %s: %w", Bucket, err)
	}
	m := &Membership{kv: kv, nc: nc, self: self, id: newID(), start: time.Now(), logger: logger,
		nodes: map[string]*seen{}, refused: map[string]bool{}, lost: map[string]bool{},
		beat: make(chan struct{}, 1), stopped: make(chan struct{})}
	if err := m.claimName(ctx); err != nil {
		return nil, err
	}
	if m.ctl, err = nc.Subscribe(controlSubject(m.id), m.control); err != nil {
		return nil, fmt.Errorf("subscribing to this node's control subject: %w", err)
	}
	if err := m.advertise(ctx); err != nil {
		_ = m.ctl.Unsubscribe()
		return nil, err
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		_ = m.ctl.Unsubscribe()
		return nil, fmt.Errorf("watching the node registry: %w", err)
	}
	// The records there now (this node's among them) are in the view
	// before Join returns: the first invocation finds the nodes.
	if err := m.catchUp(ctx, w); err != nil {
		_ = w.Stop()
		_ = m.ctl.Unsubscribe()
		return nil, err
	}
	var run context.Context
	run, m.cancel = context.WithCancel(context.Background())
	go m.run(run, w)
	logger.Info("joined the cluster", "node", self.Name, "id", m.id, "role", self.Role, "protocol", Protocol)
	return m, nil
}

// catchUp applies the watcher's initial records, up to the nil entry
// that ends them.
func (m *Membership) catchUp(ctx context.Context, w jetstream.KeyWatcher) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading the node registry: %w", ctx.Err())
		case u, ok := <-w.Updates():
			if !ok {
				return errors.New("reading the node registry: the watch ended")
			}
			if u == nil {
				return nil
			}
			m.apply(u)
		}
	}
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// claimName refuses a name another live node advertises: its record
// changes within LostAfter. A record left by a node that died (the same
// name restarting) does not change, and is taken over.
func (m *Membership) claimName(ctx context.Context) error {
	e, err := m.kv.Get(ctx, m.self.Name)
	// A bucket just made on a cluster has no replica answering reads for
	// a moment: ask again (up to 30 s).
	for try := 0; errors.Is(err, nats.ErrNoResponders) && try < 60; try++ {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reading the node registry: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
		e, err = m.kv.Get(ctx, m.self.Name)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the node registry: %w", err)
	}
	var old lambdawire.Node
	_ = json.Unmarshal(e.Value(), &old)
	wctx, cancel := context.WithTimeout(ctx, LostAfter)
	defer cancel()
	w, err := m.kv.Watch(wctx, m.self.Name, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watching the node registry: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case u := <-w.Updates():
			if u != nil && u.Operation() == jetstream.KeyValuePut {
				return fmt.Errorf("node name %q is in use by a live node (id %s, role %s): give this one another --node-name", m.self.Name, old.ID, old.Role)
			}
		case <-wctx.Done():
			m.logger.Info("taking over the name of a node that stopped", "node", m.self.Name, "old_id", old.ID)
			return nil
		}
	}
}

// record is this node's record now.
func (m *Membership) record() lambdawire.Node {
	n := lambdawire.Node{Name: m.self.Name, ID: m.id, Role: m.self.Role, Version: m.self.Version, Protocol: Protocol,
		Runtimes: m.self.Runtimes, Draining: m.draining.Load(), Health: HealthOK, Started: m.start}
	if m.self.State != nil {
		m.self.State(&n)
	}
	switch {
	case n.Draining:
		n.Health = HealthDraining
	case len(n.Problems) > 0:
		n.Health = HealthUnhealthy
	}
	return n
}

// advertise writes this node's record.
func (m *Membership) advertise(ctx context.Context) error {
	b, err := json.Marshal(m.record())
	if err != nil {
		return fmt.Errorf("encoding this node's record: %w", err)
	}
	if _, err := m.kv.Put(ctx, m.self.Name, b); err != nil {
		return fmt.Errorf("advertising this node in %s: %w", Bucket, err)
	}
	return nil
}

// run applies the others' records as they come, and advertises this
// node every HeartbeatEvery and at once when asked (heartbeat).
func (m *Membership) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(m.stopped)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.heartbeat(ctx)
	}()
	defer wg.Wait()
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case u, ok := <-w.Updates():
			if !ok {
				return
			}
			if u != nil {
				m.apply(u)
			}
		}
	}
}

// heartbeat rewrites this node's record until ctx ends.
func (m *Membership) heartbeat(ctx context.Context) {
	tick := time.NewTicker(HeartbeatEvery)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.beat:
		case <-tick.C:
		}
		actx, cancel := context.WithTimeout(ctx, HeartbeatEvery)
		err := m.advertise(actx)
		cancel()
		if err != nil && !failing && ctx.Err() == nil {
			m.logger.Warn("advertising this node failed; the others will find it lost in 3 s", "err", err)
		}
		failing = err != nil
		m.forget()
	}
}

// apply records one change of the bucket.
func (m *Membership) apply(u jetstream.KeyValueEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if u.Operation() != jetstream.KeyValuePut {
		delete(m.nodes, u.Key())
		return
	}
	var n lambdawire.Node
	if err := json.Unmarshal(u.Value(), &n); err != nil {
		m.logger.Warn("unreadable node record", "node", u.Key(), "err", err)
		return
	}
	if n.Protocol != Protocol && !m.refused[n.ID] {
		m.refused[n.ID] = true
		m.logger.Error("refusing a node of an incompatible Owl version: it is never placed on",
			"node", n.Name, "its_version", n.Version, "its_protocol", n.Protocol,
			"this_version", m.self.Version, "this_protocol", Protocol)
	}
	m.nodes[n.Name] = &seen{node: n, at: time.Now()}
}

// forget drops the nodes unheard for forgetAfter, and what was noted of
// the identities no record carries any more.
func (m *Membership) forget() {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := map[string]bool{}
	for name, s := range m.nodes {
		if time.Since(s.at) > forgetAfter {
			delete(m.nodes, name)
			continue
		}
		ids[s.node.ID] = true
	}
	for _, noted := range []map[string]bool{m.lost, m.refused} {
		for id := range noted {
			if !ids[id] {
				delete(noted, id)
			}
		}
	}
}

// health is what this node makes of s now.
func (m *Membership) health(s *seen) string {
	switch {
	case s.node.Protocol != Protocol:
		return HealthIncompatible
	case m.lost[s.node.ID] || time.Since(s.at) > LostAfter:
		return HealthLost
	case s.node.Draining:
		return HealthDraining
	case len(s.node.Problems) > 0:
		return HealthUnhealthy
	}
	return HealthOK
}

// Nodes lists every node this node knows of, by name, with its health.
func (m *Membership) Nodes() []lambdawire.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]lambdawire.Node, 0, len(m.nodes))
	for _, s := range m.nodes {
		n := s.node
		n.Health = m.health(s)
		n.LastSeenMs = time.Since(s.at).Milliseconds()
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// usable lists the nodes placement may choose: heard from lately, of
// this protocol, not draining, running environments.
func (m *Membership) usable() []lambdawire.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []lambdawire.Node
	for _, s := range m.nodes {
		if m.health(s) == HealthOK && s.node.Role != "api" {
			out = append(out, s.node)
		}
	}
	return out
}

// alive reports whether node id may still be running what it was given.
func (m *Membership) alive(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lost[id] {
		return false
	}
	for _, s := range m.nodes {
		if s.node.ID == id {
			return time.Since(s.at) <= LostAfter
		}
	}
	return false
}

// markLost records that node id is gone (NATS had no responder for it):
// placement avoids it from now on, without waiting for its record to go
// stale.
func (m *Membership) markLost(id, name string) {
	m.mu.Lock()
	first := !m.lost[id]
	m.lost[id] = true
	m.mu.Unlock()
	if first {
		m.logger.Warn("a node stopped answering; no new work goes to it", "node", name, "id", id)
	}
}

// ID is this node's identity for this run.
func (m *Membership) ID() string { return m.id }

// Draining reports whether this node takes no new placements.
func (m *Membership) Draining() bool { return m.draining.Load() }

// controlMsg is a request on a node's control subject: a ping (empty)
// or a drain.
type controlMsg struct {
	Drain *bool `json:"drain,omitempty"`
}

func controlSubject(id string) string { return "owl.node." + id + ".control" }

// control answers a ping, or drains (or resumes) this node and
// advertises it at once.
func (m *Membership) control(msg *nats.Msg) {
	var c controlMsg
	if len(msg.Data) > 0 {
		if err := json.Unmarshal(msg.Data, &c); err != nil {
			_ = msg.Respond([]byte(`{"error":"unreadable control message"}`))
			return
		}
	}
	if c.Drain != nil && m.draining.Swap(*c.Drain) != *c.Drain {
		m.logger.Info("draining changed: new placements here stop (true) or resume (false)", "draining", *c.Drain)
		select {
		case m.beat <- struct{}{}:
		default:
		}
	}
	_ = msg.Respond([]byte(`{}`))
}

// Drain asks the node named name to take no new placements (on) or to
// take them again, and waits until this node's view shows it.
func (m *Membership) Drain(ctx context.Context, name string, on bool) error {
	var target *lambdawire.Node
	for _, n := range m.Nodes() {
		if n.Name == name {
			target = &n
		}
	}
	if target == nil || target.Health == HealthLost {
		return lambdaerr.New(lambdaerr.ResourceNotFound, "No live node named %s (owl nodes lists them).", name)
	}
	b, _ := json.Marshal(controlMsg{Drain: &on}) // a bool: cannot fail
	if _, err := m.nc.RequestWithContext(ctx, controlSubject(target.ID), b); err != nil {
		return lambdaerr.Wrap(lambdaerr.Service, err, "Node %s did not take the request.", name)
	}
	for ctx.Err() == nil {
		for _, n := range m.Nodes() {
			if n.Name == name && n.Draining == on {
				return nil
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return lambdaerr.Wrap(lambdaerr.Service, ctx.Err(), "Node %s took the request, but its record did not show it in time.", name)
}

// Leave stops advertising and removes this node's record: the others
// stop placing on it at once. In-flight work is the caller's to drain
// first.
func (m *Membership) Leave() {
	m.draining.Store(true)
	m.cancel()
	<-m.stopped
	_ = m.ctl.Unsubscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := m.kv.Delete(ctx, m.self.Name); err != nil {
		m.logger.Warn("removing this node's record; the others will find it lost in 3 s", "err", err)
	}
}

// StopPlacements marks this node draining and advertises it, so that the
// others stop sending work before it shuts down.
func (m *Membership) StopPlacements(ctx context.Context) {
	m.draining.Store(true)
	if err := m.advertise(ctx); err != nil {
		m.logger.Warn("advertising the shutdown", "err", err)
	}
}
