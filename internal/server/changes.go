package server

import (
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/storegc"
	"github.com/owl-project/owl/internal/worker"
)

// applyChange is the one path by which changes to functions reach this
// node's worker: the registry's change feed, which sees every node's
// writes (and holds a write by this node until it has run here, so the
// API's handlers only write to the registry). A provisioned concurrency
// change reconciles the provisioned environments; any other change
// retires the environments of the configurations it made stale, and a
// deletion also lets the store collect the deleted function's logs and
// code.
func applyChange(w *worker.Worker, gc *storegc.Collector) func(registry.Change) {
	return func(c registry.Change) {
		if c.Provisioned {
			w.Reprovision()
			return
		}
		w.Retire(c)
		if c.Deleted() {
			gc.Kick()
		}
	}
}
