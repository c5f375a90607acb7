package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fnCache mirrors the functions bucket in memory so that resolving a
// function, version or alias on the invoke path costs a map lookup, not a
// KV round trip. It is keyed by KV key ("fn.<name>", "ver.<name>.<n>",
// "alias.<name>.<alias>") and holds decoded values (Function or Alias).
// Entries carry their KV revision and only ever move forward, so this
// node's own writes (applied at once: read-your-writes) and the watcher's
// replay of them can arrive in any order.
type fnCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry // guarded by mu
	// Indexes, guarded by mu: the reserved concurrency of every function
	// that has one and their sum; every provisioned concurrency config;
	// every event invoke config.
	reserved      map[string]int
	reservedTotal int
	provisioned   map[string]ProvisionedConfig
	eventConfigs  map[string]EventInvokeConfig
	urlConfigs    map[string]URLConfig
	urlByID       map[string]string // function URL id → its key
}

type cacheEntry struct {
	v       any // Function or Alias
	rev     uint64
	deleted bool // a tombstone: keeps an older put from coming back
}

func newFnCache() *fnCache {
	return &fnCache{entries: map[string]cacheEntry{}, reserved: map[string]int{}, provisioned: map[string]ProvisionedConfig{},
		eventConfigs: map[string]EventInvokeConfig{}, urlConfigs: map[string]URLConfig{}, urlByID: map[string]string{}}
}

// get returns a live entry. A miss (or a tombstone) sends the caller to
// the bucket, so a function created on another node is never reported
// missing just because the watcher lags.
func (c *fnCache) get(key string) (any, bool) {
	c.mu.RLock()
	e, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || e.deleted {
		return nil, false
	}
	return e.v, true
}

// deleted reports whether key's latest known state is a deletion.
func (c *fnCache) deleted(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.entries[key]
	return ok && e.deleted
}

func (c *fnCache) put(key string, v any, rev uint64) {
	c.mu.Lock()
	if e, ok := c.entries[key]; !ok || rev > e.rev {
		c.entries[key] = cacheEntry{v: v, rev: rev}
		c.index(key, v)
	}
	c.mu.Unlock()
}

func (c *fnCache) remove(key string, rev uint64) {
	c.mu.Lock()
	if e, ok := c.entries[key]; !ok || rev >= e.rev {
		c.entries[key] = cacheEntry{rev: rev, deleted: true}
		c.index(key, nil)
	}
	c.mu.Unlock()
}

// index updates the indexes for key's new value (nil: deleted); c.mu held.
func (c *fnCache) index(key string, v any) {
	switch v := v.(type) {
	case Function:
		if v.Version != Latest {
			return
		}
		c.reservedTotal -= c.reserved[v.Name]
		delete(c.reserved, v.Name)
		if v.ReservedConcurrency != nil {
			c.reserved[v.Name] = *v.ReservedConcurrency
			c.reservedTotal += *v.ReservedConcurrency
		}
	case ProvisionedConfig:
		c.provisioned[key] = v
	case EventInvokeConfig:
		c.eventConfigs[key] = v
	case URLConfig:
		if old, ok := c.urlConfigs[key]; ok {
			delete(c.urlByID, old.URLID)
		}
		c.urlConfigs[key] = v
		c.urlByID[v.URLID] = key
	case nil:
		if k, ok := parseKey(key); ok && k.kind == keyFunction {
			c.reservedTotal -= c.reserved[k.name]
			delete(c.reserved, k.name)
		}
		delete(c.provisioned, key)
		delete(c.eventConfigs, key)
		if old, ok := c.urlConfigs[key]; ok {
			delete(c.urlByID, old.URLID)
			delete(c.urlConfigs, key)
		}
	}
}

// Change describes one change to a function's runnable configurations or
// to one of its provisioned concurrency configs.
type Change struct {
	Name string
	// Version is Latest or a published version number; for a provisioned
	// concurrency change, the config's qualifier (a version or an alias).
	Version string
	// Revision is the configuration's RevisionId now; "" when it was
	// deleted. Environments of any other revision are stale. It is always
	// "" for a provisioned concurrency change.
	Revision string
	// Provisioned says a provisioned concurrency config was put or
	// deleted: what runs did not change, only how many environments of it
	// to keep ready.
	Provisioned bool
}

// Deleted reports whether the change deleted a function or one of its
// published versions.
func (c Change) Deleted() bool { return !c.Provisioned && c.Revision == "" }

// OnChange calls fn for every change (by any node, from now on) of a
// function's $LATEST, a deletion of one of its versions, or a put or
// deletion of a provisioned concurrency config. It is the one path by
// which changes reach this node's worker: a write by this node returns
// only once its watcher has called every fn (see settle), so a caller that
// invokes right after an update runs the new configuration. fn runs on the
// watcher goroutine: it must not block for long, nor write to the registry.
func (r *Registry) OnChange(fn func(Change)) { r.changed.add(fn) }

// settleTimeout bounds how long a write waits for this node's watcher to
// see it: the write itself is done by then, so a watcher that lags (a slow
// subscriber) delays the caller but never fails the write.
const settleTimeout = 10 * time.Second

// settle returns once this node's watcher has applied, and told its
// OnChange subscribers of, the bucket's entry at KV revision rev and every
// one before it; rev 0 means every write made so far (a deletion's own
// revision is not returned by NATS). Writes call it last, so that the
// caller's next step sees the change's effects on this node (its old
// environments retired, its provisioned environments reconciled).
func (r *Registry) settle(ctx context.Context, rev uint64) {
	if rev == 0 {
		st, err := r.kv.Status(ctx)
		if err != nil {
			r.opts.Logger.Warn("registry: reading the bucket's last revision; not waiting for the watcher", "err", err)
			return
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return
		}
		rev = bs.StreamInfo().State.LastSeq
	}
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for {
		r.seenMu.Lock()
		seen, advanced := r.seen, r.advanced
		r.seenMu.Unlock()
		if seen >= rev {
			return
		}
		select {
		case <-advanced:
		case <-r.watchDone:
			return
		case <-ctx.Done():
			return
		case <-timeout.C:
			r.opts.Logger.Warn("registry: the watcher has not seen this node's write yet; going on",
				"revision", rev, "seen", seen, "waited", settleTimeout)
			return
		}
	}
}

// markSeen records that the watcher has handled every entry up to rev.
func (r *Registry) markSeen(rev uint64) {
	r.seenMu.Lock()
	if rev > r.seen {
		r.seen = rev
		close(r.advanced)
		r.advanced = make(chan struct{})
	}
	r.seenMu.Unlock()
}

// startCacheWatch keeps the cache in step with the bucket until Close, and
// tells OnChange subscribers about every change after the initial replay.
func (r *Registry) startCacheWatch() error {
	ctx, cancel := context.WithCancel(context.Background())
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		cancel()
		return fmt.Errorf("watching functions: %w", err)
	}
	r.stopWatch, r.watchDone = cancel, make(chan struct{})
	r.advanced = make(chan struct{})
	go func() {
		defer close(r.watchDone)
		defer w.Stop()
		replayed := false
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // end of the initial values
					replayed = true
					continue
				}
				c, ok := r.apply(e)
				if ok && replayed {
					r.changed.call(c)
				}
				r.markSeen(e.Revision())
			}
		}
	}()
	return nil
}

// apply feeds one watched entry to the cache and says which runnable
// configuration changed (ok is false for aliases and event invoke configs).
func (r *Registry) apply(e jetstream.KeyValueEntry) (c Change, ok bool) {
	key := e.Key()
	k, valid := parseKey(key)
	if !valid {
		r.opts.Logger.Warn("function cache: unexpected key", "key", key)
		return Change{}, false
	}
	c = Change{Name: k.name, Version: Latest}
	switch k.kind {
	case keyVersion:
		c.Version = k.qualifier
	case keyProvisioned:
		c.Version, c.Provisioned = k.qualifier, true
	}
	// Aliases only point, and event invoke configs are read where events
	// are delivered: neither changes what this node's worker runs.
	told := k.kind != keyAlias && k.kind != keyEventConfig && k.kind != keyURLConfig
	if e.Operation() != jetstream.KeyValuePut {
		r.cache.remove(key, e.Revision())
		return c, told
	}
	var v any
	switch k.kind {
	case keyProvisioned:
		v, ok = decodeEntry[ProvisionedConfig](r, e, "provisioned concurrency")
	case keyEventConfig:
		v, ok = decodeEntry[EventInvokeConfig](r, e, "event invoke config")
	case keyURLConfig:
		v, ok = decodeEntry[URLConfig](r, e, "function URL config")
	case keyAlias:
		v, ok = decodeEntry[Alias](r, e, "alias")
	default:
		var f Function
		f, ok = decodeEntry[Function](r, e, "entry")
		v, c.Revision = f, f.RevisionID
	}
	if !ok {
		return Change{}, false
	}
	r.cache.put(key, v, e.Revision())
	// A published version is immutable: only its deletion is news.
	return c, k.kind == keyFunction || k.kind == keyProvisioned
}

// decodeEntry decodes a watched entry's value; what names it in the
// warning about one that does not decode.
func decodeEntry[T any](r *Registry, e jetstream.KeyValueEntry, what string) (T, bool) {
	var v T
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		r.opts.Logger.Warn("function cache: undecodable "+what, "key", e.Key(), "err", err)
		return v, false
	}
	return v, true
}

// Close stops the registry's watcher and waits for it.
func (r *Registry) Close() {
	if r.stopWatch != nil {
		r.stopWatch()
		<-r.watchDone
	}
}
