package worker

import (
	"sync"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// The environment pool: every environment of the node, the idle ones of
// each configuration (most recently used last), and each environment's
// state (state.go). It decides which environment goes where; tearing one
// down is the worker's (Worker.teardown), for the environments the pool
// hands back as retiring.

// poolKey identifies one configuration: two versions of a function never
// share an environment, nor two revisions of $LATEST.
type poolKey struct{ name, version, revision string }

func keyOf(fn registry.Function) poolKey {
	return poolKey{fn.Name, fnVersion(fn), fn.RevisionID}
}

// keyPool is one configuration's environments that wait.
type keyPool struct {
	idle    []*env // idle or frozen; most recently used last
	retired bool   // its configuration changed: nothing goes back to it
}

// envPool holds the node's environments.
type envPool struct {
	// maxLifetime and stale are fixed at creation (no lock): how old an
	// environment may get, and which configurations changed (nil: none).
	maxLifetime time.Duration
	stale       func(poolKey) bool

	// mu guards byKey, all, closed and, of every environment, state,
	// lastUsed and provisioned.
	mu     sync.Mutex
	byKey  map[poolKey]*keyPool
	all    map[*env]struct{} // every environment not retiring
	closed bool

	// teardowns counts the retired environments not yet torn down, starts
	// the starts between beginStart and endStart; Add is called under mu,
	// so Close's waits see everything before it closed the pool.
	teardowns sync.WaitGroup
	starts    sync.WaitGroup
}

func newEnvPool(maxLifetime time.Duration, stale func(poolKey) bool) *envPool {
	return &envPool{maxLifetime: maxLifetime, stale: stale, byKey: map[poolKey]*keyPool{}, all: map[*env]struct{}{}}
}

// shuttingDown is the answer to an invocation during Close.
func shuttingDown() error { return lambdaerr.New(lambdaerr.Service, "Owl is shutting down.") }

// beginStart counts a start (its sandbox being created) that Close waits
// for; it fails once the pool is closed. endStart ends it, once the
// environment was added (and is Close's to tear down) or not made.
func (p *envPool) beginStart() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return shuttingDown()
	}
	p.starts.Add(1)
	return nil
}

func (p *envPool) endStart() { p.starts.Done() }

// add registers a starting environment; it fails once the pool is closed
// (the caller destroys what it made).
func (p *envPool) add(e *env) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return shuttingDown()
	}
	p.all[e] = struct{}{}
	if p.byKey[e.key] == nil {
		p.byKey[e.key] = &keyPool{}
	}
	return nil
}

// ready marks a started environment busy (its first invocation's). It
// fails with shuttingDown() when Close retired it meanwhile.
func (p *envPool) ready(e *env) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.state == stateRetiring {
		return shuttingDown()
	}
	return e.moveLocked(stateBusy)
}

// takeIdle takes the most recently used idle environment of key and marks
// it busy; nil when there is none. Environments whose runtime exited while
// idle are retired and returned in dead: their exit belongs to no
// invocation. The caller thaws e (env.thaw) and tears the dead down.
func (p *envPool) takeIdle(key poolKey) (e *env, dead []*env, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, shuttingDown()
	}
	kp := p.byKey[key]
	for kp != nil && len(kp.idle) > 0 {
		e = kp.idle[len(kp.idle)-1]
		kp.idle[len(kp.idle)-1] = nil
		kp.idle = kp.idle[:len(kp.idle)-1]
		if e.exited.Err() != nil {
			dead = append(dead, p.detachLocked(e))
			continue
		}
		if err := e.moveLocked(stateBusy); err != nil {
			return nil, dead, err
		}
		return e, dead, nil
	}
	return nil, dead, nil
}

// release puts a busy environment back in its pool as idle, and reports
// whether it did. It does not when the pool is closed, e's configuration
// was retired or changed, e outlived maxLifetime, or e is retiring already
// (Close took it while it was busy): the caller destroys it.
func (p *envPool) release(e *env, now time.Time) (pooled bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kp := p.byKey[e.key]
	if e.state == stateRetiring || p.closed || kp == nil || kp.retired || p.expired(e, now) || p.stale != nil && p.stale(e.key) {
		return false, nil
	}
	if err := e.moveLocked(stateIdle); err != nil {
		return false, err
	}
	e.lastUsed = now
	kp.idle = append(kp.idle, e)
	return true, nil
}

// retire takes e out of the pool for teardown; false when it was retiring
// already (torn down by someone else).
func (p *envPool) retire(e *env) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return e.state != stateRetiring && p.retireLocked(e) != nil
}

// retireLocked moves e to retiring and out of all and of its idle list; it
// returns e. p.mu held; e is not retiring.
func (p *envPool) retireLocked(e *env) *env {
	if kp := p.byKey[e.key]; kp != nil && (e.state == stateIdle || e.state == stateFrozen) {
		if i := indexOf(kp.idle, e); i >= 0 {
			kp.idle = append(kp.idle[:i], kp.idle[i+1:]...)
		}
	}
	return p.detachLocked(e)
}

// detachLocked moves e, which is in no idle list, to retiring and out of
// all; it returns e. p.mu held; e is not retiring.
func (p *envPool) detachLocked(e *env) *env {
	e.state = stateRetiring // legal from every state but itself
	delete(p.all, e)
	p.teardowns.Add(1)
	return e
}

func indexOf(envs []*env, e *env) int {
	for i, x := range envs {
		if x == e {
			return i
		}
	}
	return -1
}

// retireConfig retires the configurations c changed (see Worker.Retire):
// their idle environments are returned for teardown, and their busy ones
// are retired when released.
func (p *envPool) retireConfig(c registry.Change) []*env {
	p.mu.Lock()
	defer p.mu.Unlock()
	var victims []*env
	for k, kp := range p.byKey {
		if k.name != c.Name || (c.Version != "" && k.version != c.Version) || (c.Revision != "" && k.revision == c.Revision) {
			continue
		}
		kp.retired = true
		victims = p.retireIdleLocked(kp, victims, func(*env) bool { return true })
		delete(p.byKey, k)
	}
	return victims
}

// retireIdleLocked retires the idle environments of kp that match,
// appending them to victims. p.mu held.
func (p *envPool) retireIdleLocked(kp *keyPool, victims []*env, match func(*env) bool) []*env {
	kept := kp.idle[:0]
	for _, e := range kp.idle {
		if match(e) {
			victims = append(victims, p.detachLocked(e))
		} else {
			kept = append(kept, e)
		}
	}
	clear(kp.idle[len(kept):])
	kp.idle = kept
	return victims
}

// collect retires the environments idle longer than idleTimeout (not the
// provisioned ones) or older than maxLifetime, and returns them for
// teardown.
func (p *envPool) collect(now time.Time, idleTimeout time.Duration) []*env {
	p.mu.Lock()
	defer p.mu.Unlock()
	var victims []*env
	for _, kp := range p.byKey {
		victims = p.retireIdleLocked(kp, victims, func(e *env) bool {
			return (!e.provisioned && now.Sub(e.lastUsed) > idleTimeout) || p.expired(e, now)
		})
	}
	return victims
}

// expired reports whether e has outlived maxLifetime.
func (p *envPool) expired(e *env, now time.Time) bool {
	return p.maxLifetime > 0 && now.Sub(e.created) > p.maxLifetime
}

// takeLRU retires the least recently used idle environment that is not
// provisioned, for eviction; nil when there is none.
func (p *envPool) takeLRU() *env {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *env
	for _, kp := range p.byKey {
		for _, e := range kp.idle {
			if !e.provisioned && (best == nil || e.lastUsed.Before(best.lastUsed)) {
				best = e
			}
		}
	}
	if best == nil {
		return nil
	}
	return p.retireLocked(best)
}

// beginFreeze moves e from idle to frozen, and reports whether it did
// (false: taken or retired meanwhile).
func (p *envPool) beginFreeze(e *env) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return e.state == stateIdle && e.moveLocked(stateFrozen) == nil
}

// freezeFailed moves e back from frozen to idle, unless it was taken or
// retired meanwhile.
func (p *envPool) freezeFailed(e *env) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.state == stateFrozen {
		_ = e.moveLocked(stateIdle) // frozen to idle is legal
	}
}

// close retires every environment, busy ones included, and returns them
// for teardown; the pool takes none back from then on. first is false when
// it was closed already.
func (p *envPool) close() (all []*env, first bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	p.closed = true
	for e := range p.all {
		all = append(all, p.detachLocked(e))
	}
	p.byKey = map[poolKey]*keyPool{}
	return all, true
}

// poolStats counts the environments.
type poolStats struct{ all, idle, frozen int }

func (p *envPool) stats() poolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := poolStats{all: len(p.all)}
	for _, kp := range p.byKey {
		s.idle += len(kp.idle)
		for _, e := range kp.idle {
			if e.state == stateFrozen {
				s.frozen++
			}
		}
	}
	return s
}

// byFunction counts each function's environments by state (starting,
// busy, idle, frozen) and how many of them are provisioned.
func (p *envPool) byFunction() map[string]map[string]int {
	return p.countBy(func(k poolKey) string { return k.name })
}

// byVersion is byFunction by "name:version".
func (p *envPool) byVersion() map[string]map[string]int {
	return p.countBy(func(k poolKey) string { return k.name + ":" + k.version })
}

// countBy counts the environments by state under the key of their pool
// key, and how many of them are provisioned.
func (p *envPool) countBy(key func(poolKey) string) map[string]map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[string]int{}
	for e := range p.all {
		if e.key.name == "" {
			continue
		}
		k := key(e.key)
		m := out[k]
		if m == nil {
			m = map[string]int{}
			out[k] = m
		}
		m[e.state.String()]++
		if e.provisioned {
			m["provisioned"]++
		}
	}
	return out
}

// provisioned counts the provisioned environments of name's version.
func (p *envPool) provisioned(name, version string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for e := range p.all {
		if e.provisioned && e.key.name == name && e.key.version == version {
			n++
		}
	}
	return n
}

// keepProvisioned keeps up to want[key] provisioned environments of each
// key and hands the others to on-demand use; it returns how many each key
// kept.
func (p *envPool) keepProvisioned(want map[poolKey]int, now time.Time) map[poolKey]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	have := map[poolKey]int{}
	for e := range p.all {
		if !e.provisioned {
			continue
		}
		if have[e.key] < want[e.key] {
			have[e.key]++
		} else {
			e.provisioned = false // surplus: on-demand from now on
			e.lastUsed = now
		}
	}
	return have
}
