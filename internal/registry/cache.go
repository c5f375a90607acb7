package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// fnCache mirrors the functions bucket in memory so that resolving a
// function on the invoke path costs a map lookup, not a KV round trip.
// Entries carry their KV revision and only ever move forward, so this
// node's own writes (applied at once: read-your-writes) and the watcher's
// replay of them can arrive in any order.
type fnCache struct {
	mu      sync.RWMutex
	entries map[string]cacheEntry // guarded by mu
}

type cacheEntry struct {
	f       Function
	rev     uint64
	deleted bool // a tombstone: keeps an older put from coming back
}

func newFnCache() *fnCache { return &fnCache{entries: map[string]cacheEntry{}} }

// get returns a live function. A miss (or a tombstone) sends the caller to
// the bucket, so a function created on another node is never reported
// missing just because the watcher lags.
func (c *fnCache) get(name string) (Function, bool) {
	c.mu.RLock()
	e, ok := c.entries[name]
	c.mu.RUnlock()
	if !ok || e.deleted {
		return Function{}, false
	}
	return e.f, true
}

func (c *fnCache) put(name string, f Function, rev uint64) {
	c.mu.Lock()
	if e, ok := c.entries[name]; !ok || rev > e.rev {
		c.entries[name] = cacheEntry{f: f, rev: rev}
	}
	c.mu.Unlock()
}

func (c *fnCache) remove(name string, rev uint64) {
	c.mu.Lock()
	if e, ok := c.entries[name]; !ok || rev >= e.rev {
		c.entries[name] = cacheEntry{rev: rev, deleted: true}
	}
	c.mu.Unlock()
}

// OnChange calls fn with the name of every function updated or deleted
// (by any node) from now on. Workers use it to retire the execution
// environments of stale configurations. fn runs on the watcher goroutine
// and must not block for long.
func (r *Registry) OnChange(fn func(name string)) {
	r.subsMu.Lock()
	r.subs = append(r.subs, fn)
	r.subsMu.Unlock()
}

func (r *Registry) notify(name string) {
	r.subsMu.Lock()
	subs := r.subs
	r.subsMu.Unlock()
	for _, fn := range subs {
		fn(name)
	}
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
				name := strings.TrimPrefix(e.Key(), fnPrefix)
				r.apply(name, e)
				if replayed {
					r.notify(name)
				}
			}
		}
	}()
	return nil
}

func (r *Registry) apply(name string, e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		r.cache.remove(name, e.Revision())
		return
	}
	var f Function
	if err := json.Unmarshal(e.Value(), &f); err != nil {
		r.opts.Logger.Warn("function cache: undecodable entry", "key", e.Key(), "err", err)
		return
	}
	r.cache.put(name, f, e.Revision())
}

// Close stops the registry's watcher and waits for it.
func (r *Registry) Close() {
	if r.stopWatch != nil {
		r.stopWatch()
		<-r.watchDone
	}
}
