package natsbus

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/testkit"
)

// node is one embedded server of a test cluster, its log in log.
type node struct {
	bus *Bus
	log *testkit.Buffer
}

// startCluster starts one bus per name, each with its own data dir and
// route listener, all routed to all (their own included), at once: a
// clustered server waits for a majority of its peers before it returns.
// mod may change a node's Cluster before it starts.
func startCluster(t *testing.T, names []string, mod func(i int, c *Cluster)) []node {
	t.Helper()
	dirs := make([]string, len(names))
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	return startClusterIn(t, names, dirs, mod)
}

// startClusterIn is startCluster on the data dirs dirs.
func startClusterIn(t *testing.T, names, dirs []string, mod func(i int, c *Cluster)) []node {
	t.Helper()
	addrs := make([]string, len(names))
	var routes []string
	for i := range names {
		addrs[i] = testkit.FreeAddr(t)
		routes = append(routes, "nats-route://"+addrs[i])
	}
	nodes := make([]node, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		c := &Cluster{Name: "owl-test", Addr: addrs[i], Routes: routes, User: "route", Password: "route-secret"}
		if mod != nil {
			mod(i, c)
		}
		nodes[i].log = &testkit.Buffer{}
		dir := dirs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			logger := slog.New(slog.NewTextHandler(nodes[i].log, nil))
			nodes[i].bus, errs[i] = StartEmbeddedWith(ctx, dir, logger, Options{ServerName: name, Cluster: c})
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			if n.bus != nil {
				n.bus.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %s: %v\n%s", names[i], err, nodes[i].log.String())
		}
	}
	return nodes
}

// Three embedded servers cluster: JetStream answers on each, every asset
// created through Bus.JS gets three replicas, and a message one node
// stores is read on another.
func TestClusterReplicates(t *testing.T) {
	nodes := startCluster(t, []string{"a", "b", "c"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range nodes {
		if got := n.bus.Replicas(); got != 3 {
			t.Fatalf("Replicas() on a 3-server cluster: %d", got)
		}
	}
	s, err := nodes[0].bus.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Errorf("a stream created through Bus.JS has %d replicas", r)
	}
	kv, err := nodes[1].bus.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "B"})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := kv.Status(ctx); st == nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Errorf("a bucket created through Bus.JS: %+v", st)
	}
	// An asset made with one replica (a single node's, moved in) is
	// raised to three.
	if _, err := nodes[0].bus.raw.CreateStream(ctx, jetstream.StreamConfig{Name: "ONE", Subjects: []string{"one"}}); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].bus.RaiseReplicas(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if one, err := nodes[2].bus.JS.Stream(ctx, "ONE"); err != nil || one.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("a one-replica stream after RaiseReplicas: %v %v", one, err)
	}
	if _, err := nodes[0].bus.JS.Publish(ctx, "t.x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	sc, err := nodes[2].bus.JS.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	m, err := sc.GetLastMsgForSubject(ctx, "t.x")
	if err != nil || string(m.Data) != "hello" {
		t.Fatalf("node c reads %v, %v", m, err)
	}
}

// A node with another cluster name, or wrong route credentials, is
// refused, and the logs say why in a sentence an operator understands.
func TestClusterRefusesStrangers(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(c *Cluster)
		want string
	}{
		{"cluster name", func(c *Cluster) { c.Name = "other" }, "its cluster name differs"},
		{"credentials", func(c *Cluster) { c.Password = "wrong" }, "route credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Two good nodes form the cluster; the stranger's start
			// never finds a majority, so it is given a short deadline.
			good := startCluster(t, []string{"a", "b"}, nil)
			var routes []string
			for _, n := range good {
				routes = append(routes, "nats-route://"+n.bus.srv.ClusterAddr().String())
			}
			c := &Cluster{Name: "owl-test", Addr: testkit.FreeAddr(t), Routes: routes, User: "route", Password: "route-secret"}
			tc.mod(c)
			var log testkit.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			b, err := StartEmbeddedWith(ctx, t.TempDir(), slog.New(slog.NewTextHandler(&log, nil)), Options{ServerName: "stranger", Cluster: c})
			if err == nil {
				b.Close()
				t.Fatalf("the stranger joined:\n%s", log.String())
			}
			testkit.WaitFor(t, 30*time.Second, "the refusal in a good node's log", func() bool {
				return strings.Contains(good[0].log.String(), tc.want) || strings.Contains(good[1].log.String(), tc.want)
			})
			if !strings.Contains(log.String(), "level=ERROR") || !strings.Contains(log.String(), "cluster") {
				t.Errorf("the stranger's own log does not say it was refused:\n%s", log.String())
			}
		})
	}
}

// A single node's store, started clustered beside two new nodes, is moved
// into the cluster: its streams keep their messages, sequences and
// consumers, its KV keys read on another node, and the set-aside store is
// removed.
func TestClusterMovesSingleNodeStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	single, err := StartEmbedded(ctx, dirs[0], slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s, err := single.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "EV", Subjects: []string{"ev.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := single.JS.Publish(ctx, "ev.x", []byte(strings.Repeat("x", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	kv, err := single.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "FN"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "hello", []byte("world")); err != nil {
		t.Fatal(err)
	}
	single.Close()

	nodes := startClusterIn(t, []string{"a", "b", "c"}, dirs, nil)
	if !strings.Contains(nodes[0].log.String(), "moved the single-node store into the cluster") {
		t.Fatalf("node a did not move its store:\n%s", nodes[0].log.String())
	}
	if _, err := os.Stat(StoreDir(dirs[0]) + standaloneSuffix); !os.IsNotExist(err) {
		t.Errorf("the set-aside store is still there: %v", err)
	}
	ev, err := nodes[2].bus.JS.Stream(ctx, "EV")
	if err != nil {
		t.Fatal(err)
	}
	if st := ev.CachedInfo().State; st.Msgs != 50 || st.LastSeq != 50 {
		t.Errorf("the moved stream holds %d messages up to %d, want 50 up to 50", st.Msgs, st.LastSeq)
	}
	if _, err := ev.Consumer(ctx, "d"); err != nil {
		t.Errorf("the moved stream's consumer: %v", err)
	}
	fn, err := nodes[1].bus.JS.KeyValue(ctx, "FN")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := fn.Get(ctx, "hello"); err != nil || string(e.Value()) != "world" {
		t.Fatalf("the moved bucket on node b: %v %v", e, err)
	}
	if err := nodes[1].bus.RaiseReplicas(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if ev, err := nodes[0].bus.JS.Stream(ctx, "EV"); err != nil || ev.CachedInfo().Config.Replicas != 3 {
		t.Errorf("the moved stream after RaiseReplicas: %v", err)
	}
}
