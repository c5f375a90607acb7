package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster joins the embedded server to a NATS cluster of Owl nodes: its
// route listener, the routes to its peers, their credentials and TLS.
// JetStream then runs clustered (docs/cluster.md).
type Cluster struct {
	// Name is the cluster's name; a peer with another is refused.
	Name string
	// Addr is the route listener, HOST:PORT.
	Addr string
	// Routes are the peers' route URLs (nats-route://HOST:PORT); listing
	// this node's own is harmless, and counts it in the cluster's size.
	Routes []string
	// User and Password, when set, are asked of every peer's route and
	// given to every peer (NATS routes take no token).
	User, Password string
	// CertFile and KeyFile are this node's TLS certificate for routes,
	// CAFile the authority a peer's must be signed by (both sides verify).
	CertFile, KeyFile, CAFile string
}

// apply sets opts up for c: the route listener, the routes (carrying
// c's credentials), TLS.
func (c *Cluster) apply(opts *server.Options) error {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("the cluster address %q: %w", c.Addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("the cluster address %q: bad port", c.Addr)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: p, Username: c.User, Password: c.Password,
		// A peer that is down is tried again forever (a node that comes
		// back rejoins without manual steps).
		ConnectRetries: -1, ConnectBackoff: true}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			return fmt.Errorf("the route %q: want nats-route://HOST:PORT", r)
		}
		if c.User != "" && u.User == nil {
			u.User = url.UserPassword(c.User, c.Password)
		}
		opts.Routes = append(opts.Routes, u)
	}
	if c.CertFile != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.CertFile, KeyFile: c.KeyFile, CaFile: c.CAFile, Verify: true})
		if err != nil {
			return fmt.Errorf("the cluster's TLS: %w", err)
		}
		opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, 5
	}
	return nil
}

// waitForJetStream waits until clustered JetStream answers: a meta leader
// is elected, which takes a quorum of the cluster's servers. A node
// started alone waits for its peers, saying so every 10 s.
func (b *Bus) waitForJetStream(ctx context.Context, logger *slog.Logger) error {
	start := time.Now()
	next := start.Add(10 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := b.JS.AccountInfo(actx)
		cancel()
		if err == nil {
			logger.Info("joined the NATS cluster", "cluster", b.srv.ClusterName(), "node", b.srv.Name(),
				"servers", b.clusterSize(), "replicas", b.Replicas(), "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the NATS cluster: %w", ctx.Err())
		}
		if time.Now().After(next) {
			logger.Warn("waiting for the NATS cluster's other servers: its store needs a majority of them up",
				"cluster", b.srv.ClusterName(), "routes_up", b.srv.NumRoutes(), "waited", time.Since(start).Round(time.Second), "err", err)
			next = time.Now().Add(10 * time.Second)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// clusterSize is the number of servers the JetStream cluster knows
// (running or not), 1 when not clustered. On an existing NATS it is the
// servers of its cluster the connection knows of (those it was given and
// those the servers announced).
func (b *Bus) clusterSize() int {
	if b.srv == nil { // an existing NATS (Connect): the servers it tells of
		if b.NC.ConnectedClusterName() == "" {
			return 1
		}
		return len(b.NC.Servers())
	}
	if !b.srv.JetStreamIsClustered() {
		return 1
	}
	jsz, err := b.srv.Jsz(&server.JSzOptions{})
	if err != nil || jsz.Meta == nil {
		return 1
	}
	return jsz.Meta.Size
}

// Replicas is how many copies of each stream, key-value bucket and object
// store Owl keeps: 3 once the cluster has three or more servers, else 1
// (a single node; or two servers, where one copy each is all a stream
// gets: docs/cluster.md).
func (b *Bus) Replicas() int {
	if b.clusterSize() >= 3 {
		return 3
	}
	return 1
}

// standaloneStore reports whether storeDir holds a single node's
// JetStream store (streams, and no cluster metadata).
func standaloneStore(storeDir string) bool {
	js := filepath.Join(storeDir, "jetstream")
	if _, err := os.Stat(filepath.Join(js, server.DEFAULT_SYSTEM_ACCOUNT, "_js_", "_meta_")); err == nil {
		return false
	}
	entries, err := os.ReadDir(filepath.Join(js, server.DEFAULT_GLOBAL_ACCOUNT, "streams"))
	return err == nil && len(entries) > 0
}

// errIsPlacement reports whether err is JetStream's "no servers to place
// the replicas on" (fewer servers running than replicas asked for).
func errIsPlacement(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "insufficient resources") || strings.Contains(err.Error(), "no suitable peers"))
}

// setAsideStandalone moves a single node's store out of storeDir, so that
// the clustered server starts on an empty one and migrate copies the
// streams in; it returns where the store is ("" when there is none). A
// store set aside by an interrupted start is found there again.
func setAsideStandalone(storeDir string) (string, error) {
	old := storeDir + standaloneSuffix
	if _, err := os.Stat(old); err == nil {
		return old, nil
	}
	if !standaloneStore(storeDir) {
		return "", nil
	}
	if err := os.Rename(storeDir, old); err != nil {
		return "", fmt.Errorf("setting the single-node store aside to move it into the cluster: %w", err)
	}
	return old, nil
}

// joinCluster waits for clustered JetStream, moves a single node's store
// in (standalone, when not ""), and starts keeping the assets' replicas.
func (b *Bus) joinCluster(ctx context.Context, standalone string, logger *slog.Logger) error {
	b.JS = replicated{JetStream: b.raw, b: b}
	if err := b.waitForJetStream(ctx, logger); err != nil {
		return err
	}
	members, err := b.joinOrder(ctx, standalone != "", logger)
	if err != nil {
		return err
	}
	if standalone != "" {
		logger.Info("this data dir holds a single node's store: moving it into the cluster", "from", standalone)
		if err := b.migrate(ctx, standalone, logger); err != nil {
			return fmt.Errorf("moving the single-node store into the cluster (it stays in %s; the next start tries again): %w", standalone, err)
		}
		if err := b.setMember(ctx, members, false); err != nil {
			return err
		}
	}
	b.startKeeping(logger)
	return nil
}

// startKeeping runs keepReplicas until Close.
func (b *Bus) startKeeping(logger *slog.Logger) {
	kctx, cancel := context.WithCancel(context.Background())
	b.stopKeeping, b.keeping = cancel, make(chan struct{})
	go func() {
		defer close(b.keeping)
		b.keepReplicas(kctx, logger)
	}()
}
