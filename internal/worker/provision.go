package worker

import (
	"context"
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

// Provisioned reports how many provisioned environments of name's version
// exist (busy or idle) and the last error starting one, if any.
func (w *Worker) Provisioned(name, version string) (ready int, failure string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for e := range w.all {
		if e.provisioned && e.key.name == name && e.key.version == version {
			ready++
		}
	}
	for k, msg := range w.provisionStatus {
		if k.name == name && k.version == version {
			failure = msg
		}
	}
	return ready, failure
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
	for _, t := range targets {
		key := poolKey{t.Function.Name, fnVersion(t.Function), t.Function.RevisionID}
		pt := want[key]
		pt.fn, pt.n = t.Function, pt.n+t.N
		want[key] = pt
	}

	w.mu.Lock()
	have := map[poolKey]int{}
	for e := range w.all {
		if !e.provisioned {
			continue
		}
		if have[e.key] < want[e.key].n {
			have[e.key]++
		} else {
			e.provisioned = false // surplus: on-demand from now on
			e.lastUsed = time.Now()
		}
	}
	for k := range w.provisionStatus {
		if _, ok := want[k]; !ok {
			delete(w.provisionStatus, k)
		}
	}
	w.mu.Unlock()

	for key, t := range want {
		for i := have[key]; i < t.n && ctx.Err() == nil; i++ {
			e, _, _, err := w.start(ctx, t.fn, key, startOptions{provisioned: true})
			w.mu.Lock()
			if err != nil {
				w.provisionStatus[key] = err.Error()
			} else {
				delete(w.provisionStatus, key)
			}
			w.mu.Unlock()
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
