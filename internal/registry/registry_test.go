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

	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

func testZip(t *testing.T, content string) *registry.Zip {
	t.Helper()
	return registry.ZipBytes(testkit.Zip(t, map[string]string{"bootstrap": content}))
}

// testFunction is a minimal provided.al2023 function named "fn".
func testFunction() registry.Function {
	return registry.Function{Name: "fn", Runtime: "provided.al2023", Handler: "bootstrap", MemorySize: 128, Timeout: 3,
		EphemeralStorage: 512, PackageType: "Zip", Architectures: []string{"x86_64"}}
}

// createFn creates testFunction on r with the code content.
func createFn(t *testing.T, r *registry.Registry, content string) registry.Function {
	t.Helper()
	created, err := r.Create(context.Background(), testFunction(), testZip(t, content))
	if err != nil {
		t.Fatal(err)
	}
	return created
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
	testkit.WaitFor(t, 5*time.Second, what, cond)
}

// twoNodes opens two registries on one embedded NATS; the second one's
// changes are reported on the channel.
func twoNodes(t *testing.T) (a, b *registry.Registry, changed chan registry.Change) {
	t.Helper()
	bus := natstest.Start(t)
	a, b = open(t, bus), open(t, bus)
	changed = make(chan registry.Change, 16)
	b.OnChange(func(c registry.Change) { changed <- c })
	return a, b, changed
}

// Two registries on one bucket stand for two nodes: each reads its own
// writes at once and the other's through its watcher.
func TestCacheFollowsWritesOfEveryNode(t *testing.T) {
	ctx := context.Background()
	a, b, changed := twoNodes(t)
	created := createFn(t, a, "v1")
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

	// b's subscribers heard of the update made on a. (The create may come
	// before b's watcher finished replaying the bucket, and changes during
	// the replay are not reported: no environment can be stale then.)
	deadline := time.After(10 * time.Second)
	for heard := false; !heard; {
		select {
		case c := <-changed:
			if c.Name != "fn" || c.Version != registry.Latest || c.Revision == "" {
				t.Fatalf("OnChange got %+v", c)
			}
			heard = c.Revision == updated.RevisionID
		case <-deadline:
			t.Fatalf("OnChange: the update (revision %s) was not reported", updated.RevisionID)
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
	again := createFn(t, a, "v2")
	eventually(t, "the re-created function on the other node", func() bool {
		got, err := b.Get(ctx, "fn")
		return err == nil && got.RevisionID == again.RevisionID
	})
}

// Versions and aliases written on one node resolve on another, and a
// version's deletion reaches the other node's subscribers as a Change.
func TestVersionsAcrossNodes(t *testing.T) {
	ctx := context.Background()
	a, b, changed := twoNodes(t)
	created := createFn(t, a, "v1")
	v1, err := a.Publish(ctx, "fn", registry.PublishOptions{})
	if err != nil || v1.Version != "1" {
		t.Fatalf("Publish = %q, %v", v1.Version, err)
	}
	// $LATEST's RevisionId does not change by publishing.
	if latest, _ := a.Get(ctx, "fn"); latest.RevisionID != created.RevisionID || latest.LastVersion != 1 {
		t.Errorf("$LATEST after publish: revision %s (was %s), last version %d", latest.RevisionID, created.RevisionID, latest.LastVersion)
	}
	if _, err := a.Update(ctx, "fn", "", testZip(t, "v2"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateAlias(ctx, "fn", "live", registry.AliasInput{FunctionVersion: ptr("1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the other node to resolve fn:live to version 1", func() bool {
		tg, err := b.Resolve(ctx, "fn", "live")
		return err == nil && tg.Version == "1" && tg.CodeSha256Hex == v1.CodeSha256Hex && tg.Alias != nil
	})
	if err := a.DeleteAlias(ctx, "fn", "live"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteVersion(ctx, "fn", "1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case c := <-changed:
			if c == (registry.Change{Name: "fn", Version: "1"}) {
				return
			}
		case <-deadline:
			t.Fatal("the other node's subscribers did not hear of version 1's deletion")
		}
	}
}

func TestAliasRoute(t *testing.T) {
	a := registry.Alias{FunctionVersion: "1", AdditionalVersionWeights: map[string]float64{"2": 0.1}}
	for _, tc := range []struct {
		rnd  float64
		want string
	}{{0, "2"}, {0.0999, "2"}, {0.1, "1"}, {0.99, "1"}} {
		if got := a.Route(tc.rnd); got != tc.want {
			t.Errorf("Route(%v) = %s, want %s", tc.rnd, got, tc.want)
		}
	}
	if got := (registry.Alias{FunctionVersion: "$LATEST"}).Route(0); got != "$LATEST" {
		t.Errorf("unweighted Route = %s", got)
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkResolveForInvoke is what resolving a qualifier costs on the
// invoke path (served from the in-memory mirror).
func BenchmarkResolveForInvoke(b *testing.B) {
	ctx := context.Background()
	bus := natstest.Start(b)
	r, err := registry.Open(ctx, bus.JS, registry.Options{Region: "us-east-1", AccountID: "000000000000",
		CodeStorageLimit: 1 << 30, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	f := testFunction()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("bootstrap")
	w.Write([]byte("x"))
	zw.Close()
	if _, err := r.Create(ctx, f, registry.ZipBytes(buf.Bytes())); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := r.Update(ctx, "fn", "", nil, func(f *registry.Function) { f.Timeout = 4 + i }); err != nil {
			b.Fatal(err)
		}
		if _, err := r.Publish(ctx, "fn", registry.PublishOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := r.CreateAlias(ctx, "fn", "stable", registry.AliasInput{FunctionVersion: ptr("1")}); err != nil {
		b.Fatal(err)
	}
	if _, err := r.CreateAlias(ctx, "fn", "canary", registry.AliasInput{FunctionVersion: ptr("1"),
		AdditionalVersionWeights: map[string]float64{"2": 0.1}}); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{"", "1", "stable", "canary"} {
		b.Run("q="+q, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := r.ResolveForInvoke(ctx, "fn", q, float64(i%10)/10); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
