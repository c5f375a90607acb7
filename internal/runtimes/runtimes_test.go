package runtimes_test

import (
	"slices"
	"testing"

	"github.com/owl-project/owl/internal/runtimes"
)

// Interpreted is the available runtimes that run Owl's own bootstrap:
// each is one IDs lists, none brings its own (provided.*).
func TestInterpreted(t *testing.T) {
	ids := runtimes.IDs()
	for _, id := range runtimes.Interpreted() {
		rt, ok := runtimes.Lookup(id)
		if !ok || !slices.Contains(ids, id) {
			t.Errorf("Interpreted lists %s, which this machine cannot run", id)
		}
		if rt.Provided() {
			t.Errorf("Interpreted lists %s, which brings its own bootstrap", id)
		}
	}
	for _, id := range ids {
		rt, _ := runtimes.Lookup(id)
		if !rt.Provided() && !slices.Contains(runtimes.Interpreted(), id) {
			t.Errorf("Interpreted leaves out %s", id)
		}
	}
}
