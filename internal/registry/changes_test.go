package registry_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

// heard collects the changes a node's subscriber was told of.
type heard struct {
	mu      sync.Mutex
	changes []registry.Change
}

func (h *heard) has(c registry.Change) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.changes, c)
}

// Every write returns only once this node's own subscribers have been told
// of it, even a slow one: the API relies on it so that an invocation right
// after an update never runs the old configuration.
func TestWritesReturnOnceTheirChangeIsHeard(t *testing.T) {
	ctx := context.Background()
	bus := natstest.Start(t)
	r := open(t, bus)
	h := &heard{}
	r.OnChange(func(c registry.Change) {
		time.Sleep(50 * time.Millisecond) // a subscriber slower than the write
		h.mu.Lock()
		h.changes = append(h.changes, c)
		h.mu.Unlock()
	})
	created := createFn(t, r, "v1")
	if want := (registry.Change{Name: "fn", Version: registry.Latest, Revision: created.RevisionID}); !h.has(want) {
		t.Errorf("Create returned before its subscribers heard %+v", want)
	}
	updated, err := r.Update(ctx, "fn", "", testZip(t, "v2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (registry.Change{Name: "fn", Version: registry.Latest, Revision: updated.RevisionID}); !h.has(want) {
		t.Errorf("Update returned before its subscribers heard %+v", want)
	}
	if _, err := r.Publish(ctx, "fn", registry.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutProvisioned(ctx, "fn", "1", 1, 100); err != nil {
		t.Fatal(err)
	}
	if want := (registry.Change{Name: "fn", Version: "1", Provisioned: true}); !h.has(want) {
		t.Errorf("PutProvisioned returned before its subscribers heard %+v", want)
	}
	if err := r.DeleteProvisioned(ctx, "fn", "1"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteVersion(ctx, "fn", "1"); err != nil {
		t.Fatal(err)
	}
	if want := (registry.Change{Name: "fn", Version: "1"}); !h.has(want) || !want.Deleted() {
		t.Errorf("DeleteVersion returned before its subscribers heard %+v", want)
	}
	if err := r.Delete(ctx, "fn"); err != nil {
		t.Fatal(err)
	}
	if want := (registry.Change{Name: "fn", Version: registry.Latest}); !h.has(want) {
		t.Errorf("Delete returned before its subscribers heard %+v", want)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	provisioned := 0
	for _, c := range h.changes {
		if c.Provisioned {
			provisioned++
			if c.Deleted() || c.Revision != "" {
				t.Errorf("a provisioned concurrency change reads as a configuration change: %+v", c)
			}
		}
	}
	if provisioned != 2 {
		t.Errorf("heard %d provisioned concurrency changes, want 2 (the put and the delete): %+v", provisioned, h.changes)
	}
}
