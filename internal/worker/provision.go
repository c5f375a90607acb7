package worker

import (
	"context"
	"sync"
	"time"

	"github.com/owl-project/owl/internal/registry"
)

// Provisioning supplies what provisioned concurrency asks for (the
// registry): per published version, how many environments to keep
// initialised.
type Provisioning interface {
	ProvisionedTargets(ctx context.Context) ([]registry.ProvisionedTarget, error)
}

// Reprovision asks the provisioning loop to reconcile now (after a
// provisioned concurrency config changed on this node).
func (w *Worker) Reprovision() {
	select {
	case w.provisionNow <- struct{}{}:
	default:
	}
}

// provisionStatus holds the last failure to start a provisioned
// environment, per configuration.
type provisionStatus struct {
	mu    sync.Mutex // guards byKey
	byKey map[poolKey]string
}

// set records err (nil: success) for key.
func (ps *provisionStatus) set(key poolKey, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err != nil {
		ps.byKey[key] = err.Error()
	} else {
		delete(ps.byKey, key)
	}
}

// failure is the last failure of name's version, if any.
func (ps *provisionStatus) failure(name, version string) string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	failure := ""
	for k, msg := range ps.byKey {
		if k.name == name && k.version == version {
			failure = msg
		}
	}
	return failure
}

// keepOnly forgets the keys that are not in want.
func (ps *provisionStatus) keepOnly(want map[poolKey]int) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k := range ps.byKey {
		if _, ok := want[k]; !ok {
			delete(ps.byKey, k)
		}
	}
}

// Provisioned reports how many provisioned environments of name's version
// exist (busy or idle) and the last error starting one, if any.
func (w *Worker) Provisioned(name, version string) (ready int, failure string) {
	return w.envs.provisioned(name, version), w.provisionStatus.failure(name, version)
}

// provisionLoop keeps provisioned environments at their targets: on every
// Reprovision and every ProvisionEvery, it starts the missing ones and
// hands the surplus back to on-demand use (idle collection then takes
// them). Environments that die are replaced on the next pass.
func (w *Worker) provisionLoop() {
	defer close(w.provisionDone)
	if w.cfg.Provisioning == nil {
		<-w.stopGC
		return
	}
	every := w.cfg.ProvisionEvery
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-w.stopGC
		cancel()
	}()
	for {
		select {
		case <-w.stopGC:
			return
		case <-t.C:
		case <-w.provisionNow:
		}
		w.reconcileProvisioned(ctx)
	}
}

type provisionTarget struct {
	fn registry.Function
	n  int
}

func (w *Worker) reconcileProvisioned(ctx context.Context) {
	targets, err := w.cfg.Provisioning.ProvisionedTargets(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.cfg.Logger.Warn("provisioned concurrency: reading targets", "err", err)
		}
		return
	}
	want := map[poolKey]provisionTarget{}
	wantN := map[poolKey]int{}
	for _, t := range targets {
		key := keyOf(t.Function)
		pt := want[key]
		pt.fn, pt.n = t.Function, pt.n+t.N
		want[key] = pt
		wantN[key] = pt.n
	}
	have := w.envs.keepProvisioned(wantN, time.Now())
	w.provisionStatus.keepOnly(wantN)

	for key, t := range want {
		for i := have[key]; i < t.n && ctx.Err() == nil; i++ {
			e, _, err := w.start(ctx, t.fn, key, startOptions{provisioned: true})
			w.provisionStatus.set(key, err)
			if err != nil {
				if ctx.Err() == nil {
					w.cfg.Logger.Warn("provisioned concurrency: starting an environment", "function", key.name, "version", key.version, "err", err)
				}
				break
			}
			w.release(e)
		}
	}
}
