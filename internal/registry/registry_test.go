package registry_test

import (
	"archive/zip"
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
)

func testZip(t *testing.T, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("bootstrap")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(content))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(t *testing.T, bus *natsbus.Bus) *registry.Registry {
	t.Helper()
	r, err := registry.Open(context.Background(), bus.JS, registry.Options{
		Region: "us-east-1", AccountID: "000000000000", CodeStorageLimit: 1 << 30, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two registries on one bucket stand for two nodes: each reads its own
// writes at once and the other's through its watcher.
func TestCacheFollowsWritesOfEveryNode(t *testing.T) {
	ctx := context.Background()
	bus, err := natsbus.StartEmbedded(ctx, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	a, b := open(t, bus), open(t, bus)
	changed := make(chan string, 16)
	b.OnChange(func(name string) { changed <- name })

	f := registry.Function{Name: "fn", Runtime: "provided.al2023", Handler: "bootstrap", MemorySize: 128, Timeout: 3,
		EphemeralStorage: 512, PackageType: "Zip", Architectures: []string{"x86_64"}}
	created, err := a.Create(ctx, f, testZip(t, "v1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "fn"); err != nil || got.RevisionID != created.RevisionID {
		t.Fatalf("other node Get = %v, %v; want revision %s", got.RevisionID, err, created.RevisionID)
	}

	updated, err := a.Update(ctx, "fn", created.RevisionID, nil, func(f *registry.Function) { f.Timeout = 9 })
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Get(ctx, "fn"); got.Timeout != 9 || got.RevisionID != updated.RevisionID {
		t.Fatalf("own write not visible at once: %+v", got)
	}
	eventually(t, "the other node to see the update", func() bool {
		got, err := b.Get(ctx, "fn")
		return err == nil && got.RevisionID == updated.RevisionID
	})

	// b's subscribers heard of the create and the update, made on a.
	for i := 0; i < 2; i++ {
		select {
		case name := <-changed:
			if name != "fn" {
				t.Fatalf("OnChange got %q", name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("OnChange: change %d not reported", i+1)
		}
	}

	if _, err := a.Update(ctx, "fn", created.RevisionID, nil, nil); !lambdaerr.Is(err, lambdaerr.PreconditionFailed) {
		t.Fatalf("stale RevisionId: err = %v, want PreconditionFailedException", err)
	}

	if err := b.Delete(ctx, "fn"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "fn"); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Fatalf("own delete not visible at once: %v", err)
	}
	eventually(t, "the other node to see the delete", func() bool {
		_, err := a.Get(ctx, "fn")
		return lambdaerr.Is(err, lambdaerr.ResourceNotFound)
	})

	// A new function of the same name comes back on both.
	again, err := a.Create(ctx, f, testZip(t, "v2"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the re-created function on the other node", func() bool {
		got, err := b.Get(ctx, "fn")
		return err == nil && got.RevisionID == again.RevisionID
	})
}
