// Package leases keeps concurrency limits cluster-wide. When several Owl
// nodes run invocations, the account's concurrency limit and each
// function's reserved concurrency must hold across all of them, yet asking
// the store before every invocation would put a replicated write on the
// warm path. Instead each node leases slots of a limit in small blocks from
// a JetStream KV bucket (OWL_LEASES): one key per limit, its value every
// node's leased count with the time until which it counts. A node uses
// the slots it holds without asking anyone, grows its lease with a
// compare-and-set when it runs out, gives idle slots back after a short
// linger, and renews what it keeps. The sum of the leases never exceeds the
// limit; a node that dies stops counting when its entries expire (TTL), and
// a node that cannot renew stops using its slots at the same moment, so a
// partition cannot double a limit either.
//
// A single node needs none of this: the worker counts locally and the
// server makes no Table.
package leases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the KV bucket the leases are kept in.
const Bucket = "OWL_LEASES"

// ErrFull is returned by Acquire when every slot of the limit is leased
// (by this node or others): the caller throttles.
var ErrFull = errors.New("leases: the limit is reached across the cluster")

// Options tune a Table; zero values take the defaults.
type Options struct {
	// Node names this node; it must be unique in the cluster.
	Node string
	// Replicas of the bucket (1 or 3).
	Replicas int
	// Block is the most slots taken in one grow (default 4). Small limits
	// are leased one slot at a time, so that one node cannot hold another's
	// share idle.
	Block int
	// Linger is how long slots stay leased after they went idle (default
	// 250 ms): a node under steady load keeps its lease without a write.
	Linger time.Duration
	// TTL is how long a lease counts without renewal (default 5 s): how
	// long a dead node's slots stay taken.
	TTL    time.Duration
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Block <= 0 {
		o.Block = 4
	}
	if o.Linger <= 0 {
		o.Linger = 250 * time.Millisecond
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Second
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// record is a key's value: each node's leased slots.
type record struct {
	Nodes map[string]entry `json:"nodes"`
}

// entry is one node's lease of a limit.
type entry struct {
	N     int       `json:"n"`
	Until time.Time `json:"until"` // it stops counting then
}

// slot is this node's view of one key.
type slot struct {
	grow sync.Mutex // one grow or shrink of this key at a time

	// Guarded by Table.mu.
	leased, used int
	until        time.Time // when this node's lease stops counting
	idleSince    time.Time // when used fell below leased; zero when it is not
	limit        int       // the last limit asked for
}

// Table is this node's leases.
type Table struct {
	kv   jetstream.KeyValue
	opts Options
	now  func() time.Time

	mu    sync.Mutex
	slots map[string]*slot

	stop chan struct{}
	done chan struct{}
}

// Open makes (or opens) the bucket and starts the loop that gives back
// idle slots and renews held ones. Close ends it.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Table, error) {
	opts.defaults()
	if opts.Node == "" {
		return nil, errors.New("leases: a node name is needed")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Owl: concurrency slots leased by each node",
		History: 1, Storage: jetstream.FileStorage, Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s bucket: %w", Bucket, err)
	}
	t := &Table{kv: kv, opts: opts, now: time.Now, slots: map[string]*slot{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t, nil
}

// Acquire takes one slot of key, whose limit is limit cluster-wide. It
// returns ErrFull when the cluster holds every slot, or an error when the
// store cannot be reached (then nothing is taken).
func (t *Table) Acquire(ctx context.Context, key string, limit int) error {
	if limit <= 0 {
		return ErrFull
	}
	t.mu.Lock()
	s := t.slots[key]
	if s == nil {
		s = &slot{}
		t.slots[key] = s
	}
	s.limit = limit
	if t.takeLocked(s) {
		t.mu.Unlock()
		return nil
	}
	t.mu.Unlock()

	s.grow.Lock()
	defer s.grow.Unlock()
	t.mu.Lock()
	if t.takeLocked(s) { // another caller grew it meanwhile
		t.mu.Unlock()
		return nil
	}
	t.mu.Unlock()
	if err := t.growLease(ctx, key, s, limit); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.takeLocked(s) { // cannot happen: the grow added at least one
		return ErrFull
	}
	return nil
}

// takeLocked uses a held slot of s, if one is free and still counts.
func (t *Table) takeLocked(s *slot) bool {
	if s.used >= s.leased || !t.now().Before(s.until) || s.used >= s.limit {
		return false
	}
	s.used++
	if s.used == s.leased {
		s.idleSince = time.Time{}
	}
	return true
}

// Release gives back a slot Acquire took; the lease itself is given back
// by the loop once it has been idle for Linger.
func (t *Table) Release(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.slots[key]
	if s == nil || s.used == 0 {
		return
	}
	s.used--
	if s.idleSince.IsZero() {
		s.idleSince = t.now()
	}
}

// growLease takes up to a block of free slots of key for this node.
func (t *Table) growLease(ctx context.Context, key string, s *slot, limit int) error {
	return t.update(ctx, key, func(r *record, now time.Time) error {
		total := 0
		for node, e := range r.Nodes {
			if node != t.opts.Node {
				total += e.N
			}
		}
		t.mu.Lock()
		mine := s.leased
		if !now.Before(s.until) {
			mine = s.used // a lapsed lease: only what is running still counts
		}
		t.mu.Unlock()
		free := limit - total - mine
		if free <= 0 {
			return ErrFull
		}
		take := min(free, t.opts.Block, max(1, limit/16))
		r.Nodes[t.opts.Node] = entry{N: mine + take, Until: now.Add(t.opts.TTL)}
		return nil
	}, func(e entry) {
		t.mu.Lock()
		s.leased, s.until = e.N, e.Until
		t.mu.Unlock()
	})
}

// update applies change to key's record with a compare-and-set, again on
// a conflict; expired entries of other nodes are dropped on the way.
// applied is told this node's entry as stored.
func (t *Table) update(ctx context.Context, key string, change func(*record, time.Time) error, applied func(entry)) error {
	for attempt := 0; ; attempt++ {
		r := record{Nodes: map[string]entry{}}
		var rev uint64
		kve, err := t.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return fmt.Errorf("reading lease %s: %w", key, err)
		default:
			rev = kve.Revision()
			if err := json.Unmarshal(kve.Value(), &r); err != nil {
				return fmt.Errorf("reading lease %s: %w", key, err)
			}
			if r.Nodes == nil {
				r.Nodes = map[string]entry{}
			}
		}
		now := t.now()
		for node, e := range r.Nodes {
			if node != t.opts.Node && !now.Before(e.Until) {
				delete(r.Nodes, node)
			}
		}
		if err := change(&r, now); err != nil {
			return err
		}
		data, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encoding lease %s: %w", key, err)
		}
		if rev == 0 {
			_, err = t.kv.Create(ctx, key, data)
		} else {
			_, err = t.kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			applied(r.Nodes[t.opts.Node])
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return fmt.Errorf("writing lease %s: %w", key, err)
		}
		if attempt >= 20 {
			return fmt.Errorf("writing lease %s: too many concurrent changes: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// isWrongSequence reports a compare-and-set that lost a race.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// loop gives back slots idle for Linger and renews leases in use before
// they lapse.
func (t *Table) loop() {
	defer close(t.done)
	tick := time.NewTicker(max(t.opts.Linger/2, 20*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.tend(context.Background())
	}
}

// tend shrinks or renews every key that needs it.
func (t *Table) tend(ctx context.Context) {
	now := t.now()
	t.mu.Lock()
	var keys []string
	for key, s := range t.slots {
		idle := s.leased > s.used && !s.idleSince.IsZero() && now.Sub(s.idleSince) >= t.opts.Linger
		renew := s.leased > 0 && s.until.Sub(now) < t.opts.TTL/2
		switch {
		case idle || renew:
			keys = append(keys, key)
		case s.leased == 0 && s.used == 0:
			delete(t.slots, key) // nothing held, nothing running
		}
	}
	t.mu.Unlock()
	for _, key := range keys {
		ctx, cancel := context.WithTimeout(ctx, t.opts.TTL/2)
		if err := t.resize(ctx, key, false); err != nil {
			t.opts.Logger.Warn("a concurrency lease was not renewed", "key", key, "err", err)
		}
		cancel()
	}
}

// resize sets this node's lease of key to what is in use (all when
// giving everything back), renewing it.
func (t *Table) resize(ctx context.Context, key string, all bool) error {
	t.mu.Lock()
	s := t.slots[key]
	t.mu.Unlock()
	if s == nil {
		return nil
	}
	s.grow.Lock()
	defer s.grow.Unlock()
	return t.update(ctx, key, func(r *record, now time.Time) error {
		t.mu.Lock()
		n := s.leased
		if !s.idleSince.IsZero() && now.Sub(s.idleSince) >= t.opts.Linger || !now.Before(s.until) {
			n = s.used // idle slots go back; a lapsed lease keeps only what runs
		}
		if all {
			n = 0
		}
		t.mu.Unlock()
		if n == 0 {
			delete(r.Nodes, t.opts.Node)
		} else {
			r.Nodes[t.opts.Node] = entry{N: n, Until: now.Add(t.opts.TTL)}
		}
		return nil
	}, func(e entry) {
		t.mu.Lock()
		s.leased, s.until = e.N, e.Until
		if s.used >= s.leased {
			s.idleSince = time.Time{}
		}
		t.mu.Unlock()
	})
}

// Held is how many slots of key this node leases and how many it uses.
func (t *Table) Held(key string) (leased, used int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.slots[key]; s != nil {
		return s.leased, s.used
	}
	return 0, 0
}

// Close stops the loop and gives every lease back (best effort: what it
// cannot give back expires after TTL).
func (t *Table) Close(ctx context.Context) {
	close(t.stop)
	<-t.done
	t.mu.Lock()
	keys := make([]string, 0, len(t.slots))
	for key := range t.slots {
		keys = append(keys, key)
	}
	t.mu.Unlock()
	for _, key := range keys {
		if err := t.resize(ctx, key, true); err != nil {
			t.opts.Logger.Debug("a concurrency lease was left to expire", "key", key, "err", err)
		}
	}
}
