// Package natsbus owns Owl's connection to NATS: by default an embedded
// nats-server with JetStream on, storing under the data directory and
// listening on no network port; the client reaches it in process. With
// Options.Cluster it joins a NATS cluster of Owl nodes instead
// (cluster.go): JetStream clustered, every asset created through Bus.JS
// replicated as Replicas() says (replicas.go), and a single node's store
// moved into the cluster on the first clustered start (migrate.go). It
// also measures the store (Usage) and sizes JetStream's limits so that
// the data dir's free space, watched by internal/diskspace, is what
// decides.
package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/diskspace"
)

// CompactInterval is how often JetStream syncs its block files and
// compacts those more than half of whose bytes are deleted messages (the
// file store does both in one background pass per stream, its
// "SyncInterval"; nats-server's default is 2 minutes). Deleting a code
// object or a function's logs only marks messages deleted inside a block;
// this pass is what gives the space back (docs/architecture.md).
const CompactInterval = 10 * time.Second

// Bus is a running embedded NATS server and a connection to it.
type Bus struct {
	srv      *server.Server
	storeDir string
	maxStore int64
	NC       *nats.Conn
	// JS is the JetStream Owl's packages create and use their assets
	// through; clustered, it sets their replicas (replicas.go).
	JS  jetstream.JetStream
	raw jetstream.JetStream // JS without the replicas' wrapper
	// listening: Options.Listen serves clients outside Owl (a cluster's
	// node listens on loopback for its own connection only).
	listening bool
	// stopKeeping ends keepReplicas; keeping closes when it has.
	stopKeeping context.CancelFunc
	keeping     chan struct{}
}

// publishAsyncTimeout bounds the wait for an asynchronous publish's
// acknowledgement on a cluster: one lost with a server that died fails
// then instead of being waited for forever (and with it every flush).
const publishAsyncTimeout = 30 * time.Second

// StoreDir is where JetStream keeps its files for dataDir.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

// Options tune the embedded server; the zero value is Owl's default.
type Options struct {
	// SyncAlways makes JetStream fsync each write before acknowledging it
	// (nats-server's sync_interval: always): an acknowledged message then
	// survives a power loss or kernel crash, not just Owl's own crash, at
	// the cost docs/events.md records. Off, the store syncs every
	// CompactInterval.
	SyncAlways bool
	// Listen, when set (HOST:PORT), serves NATS clients outside Owl on
	// it, as user ClientUser with ClientPassword. They may publish and
	// subscribe on any subject but the system's and Owl's own ($JS, $KV,
	// $O, $SYS, owl.…): they feed subject triggers and hear destinations,
	// and cannot touch Owl's streams. Owl's own connection stays in
	// process, as a user of its own.
	Listen                     string
	ClientUser, ClientPassword string
	// ServerName is the NATS server's name, unique in a cluster (the
	// node's name); "" is "owl".
	ServerName string
	// Cluster, when set, joins the server to a cluster of Owl nodes
	// (cluster.go); nil runs it alone, as before, with no port at all
	// unless Listen asks for one.
	Cluster *Cluster
}

// ClientDenied are the subjects clients on Options.Listen may neither
// publish nor subscribe to.
var ClientDenied = []string{"$JS.>", "$JSC.>", "$KV.>", "$O.>", "$SYS.>", "$NRG.>", "$G.>", "owl.>", InboxPrefix + ".>"}

// InboxPrefix starts the reply subjects of Owl's own connection (its
// JetStream API answers carry function configurations): clients on the
// listener may not subscribe to them.
const InboxPrefix = "_OWL_INBOX"

// StartEmbedded starts an embedded JetStream server storing under
// dataDir/nats with the default Options and connects to it in process.
func StartEmbedded(ctx context.Context, dataDir string, logger *slog.Logger) (*Bus, error) {
	return StartEmbeddedWith(ctx, dataDir, logger, Options{})
}

// StartEmbeddedWith is StartEmbedded with o. It is long because it is the
// server's options in one place, read top to bottom: the store and its
// limits, Owl's own user and the listener's, then the cluster's routes,
// each next to why it is set so.
func StartEmbeddedWith(ctx context.Context, dataDir string, logger *slog.Logger, o Options) (*Bus, error) {
	// JetStream's own store limit defaults to 75 % of the free space at
	// start, a number that is stale the moment anything else writes to
	// the disk. The filesystem's size makes it never the one refusing:
	// the data dir's actual free space, checked before every write that
	// needs space (internal/diskspace), decides.
	total, err := diskspace.TotalBytes(dataDir)
	if err != nil {
		return nil, fmt.Errorf("sizing the store: %w", err)
	}
	name := o.ServerName
	if name == "" {
		name = "owl"
	}
	opts := &server.Options{
		ServerName:        name,
		JetStream:         true,
		StoreDir:          StoreDir(dataDir),
		JetStreamMaxStore: total,
		DontListen:        true,
		NoSigs:            true,
		// An asynchronous invocation's record holds up to 1 MB of payload
		// and its envelope, past nats-server's default of 1 MB.
		MaxPayload: 8 << 20,
		// JetStream sync on every write costs what docs/events.md
		// records; a periodic sync matches NATS' own durability default,
		// run more often than its default so that compaction follows
		// deletions. SyncAlways keeps the interval (the compaction pass)
		// and syncs every write as well.
		SyncInterval: CompactInterval,
		SyncAlways:   o.SyncAlways,
	}
	internal := func(no *nats.Options) error {
		no.Name, no.InboxPrefix = "owl", InboxPrefix
		return nil
	}
	if o.Listen != "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("the NATS listen address %q: %w", o.Listen, err)
		}
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("the NATS listen address %q: bad port", o.Listen)
		}
		if o.ClientUser == "" || o.ClientPassword == "" {
			return nil, errors.New("a NATS listener needs a client user and password")
		}
		opts.Host, opts.DontListen = host, false
		own := randomPassword()
		deny := &server.SubjectPermission{Allow: []string{">"}, Deny: ClientDenied}
		opts.Users = []*server.User{
			{Username: "owl-internal", Password: own},
			{Username: o.ClientUser, Password: o.ClientPassword, Permissions: &server.Permissions{Publish: deny, Subscribe: deny}},
		}
		internal = func(no *nats.Options) error {
			no.Name, no.InboxPrefix, no.User, no.Password = "owl", InboxPrefix, "owl-internal", own
			return nil
		}
	}
	var standalone string // a single node's store to move into the cluster
	if o.Cluster != nil {
		if err := o.Cluster.apply(opts); err != nil {
			return nil, err
		}
		if opts.DontListen {
			// nats-server starts routing only once a client listener
			// is up: one on loopback, a free port, that only Owl's own
			// user (its password made anew at each start) may use.
			own := randomPassword()
			opts.Host, opts.Port, opts.DontListen = "127.0.0.1", server.RANDOM_PORT, false
			opts.Users = []*server.User{{Username: "owl-internal", Password: own}}
			internal = func(no *nats.Options) error {
				no.Name, no.InboxPrefix, no.User, no.Password = "owl", InboxPrefix, "owl-internal", own
				return nil
			}
		}
		if standalone, err = setAsideStandalone(opts.StoreDir); err != nil {
			return nil, err
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating embedded NATS server: %w", err)
	}
	nl := logger.With("component", "nats")
	srv.SetLoggerV2(natsLogger{nl}, nl.Enabled(ctx, slog.LevelDebug-4), nl.Enabled(ctx, slog.LevelDebug-8), false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server not ready after 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), internal, nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	var jsOpts []jetstream.JetStreamOpt
	if o.Cluster != nil {
		// A clustered request waits on peers: give it more than the
		// in-process default of 5 s on a loaded machine.
		// An asynchronous publish whose ack was lost with a server that
		// died fails after 30 s instead of being waited for forever.
		jsOpts = append(jsOpts, jetstream.WithDefaultTimeout(30*time.Second),
			jetstream.WithPublishAsyncTimeout(publishAsyncTimeout))
	}
	js, err := jetstream.New(nc, jsOpts...)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	b := &Bus{srv: srv, storeDir: opts.StoreDir, maxStore: total, NC: nc, JS: js, raw: js, listening: o.Listen != ""}
	if o.Cluster != nil {
		if err := b.joinCluster(ctx, standalone, logger); err != nil {
			b.Close()
			return nil, err
		}
	}
	logger.Debug("embedded NATS ready", "store", opts.StoreDir)
	return b, nil
}

// randomPassword is a password for Owl's own connection, made anew at
// every start.
func randomPassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ClientURL is where clients reach the NATS listener ("" without one).
func (b *Bus) ClientURL() string {
	if b.srv == nil {
		return ""
	}
	if addr := b.srv.Addr(); addr != nil && b.listening {
		return "nats://" + addr.String()
	}
	return ""
}

// Close drains the connection and shuts the server down, waiting for it.
func (b *Bus) Close() {
	if b.stopKeeping != nil {
		b.stopKeeping()
		<-b.keeping
	}
	if b.NC != nil {
		_ = b.NC.Drain()
		// Drain is asynchronous; Close makes sure the connection is gone.
		b.NC.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
}

// StreamUsage is one stream's live data against its files on disk.
type StreamUsage struct {
	Name       string
	LiveBytes  uint64 // bytes of the messages it holds
	FileBytes  int64  // disk space its files take
	Messages   uint64
	NumDeleted int // deleted messages still inside its blocks
}

// Usage is the store's size: what its files take on disk, what of that is
// live messages, and the difference, which compaction gives back.
type Usage struct {
	// StoreBytes is the disk space of every file under the store dir.
	StoreBytes int64
	// LiveBytes is the bytes of the messages every stream holds.
	LiveBytes int64
	// ReclaimableBytes is StoreBytes less LiveBytes (never negative):
	// deleted messages still in block files, and the files' overhead.
	ReclaimableBytes int64
	Streams          []StreamUsage
}

// Usage measures the store: stream states from JetStream, file sizes
// from the disk. On an external NATS server the files are not Owl's to
// measure: StoreBytes is then the live bytes.
func (b *Bus) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	perStream := map[string]int64{}
	streamsDir := filepath.Join(b.storeDir, "jetstream", "$G", "streams")
	err := b.walkStore(func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // files come and go while JetStream works
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		size := info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			size = st.Blocks * 512
		}
		u.StoreBytes += size
		if rel, err := filepath.Rel(streamsDir, p); err == nil && rel != "" && rel[0] != '.' {
			name, _, _ := cutSep(rel)
			perStream[name] += size
		}
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("measuring %s: %w", b.storeDir, err)
	}
	lister := b.JS.ListStreams(ctx)
	for info := range lister.Info() {
		su := StreamUsage{
			Name: info.Config.Name, LiveBytes: info.State.Bytes, Messages: info.State.Msgs,
			NumDeleted: info.State.NumDeleted, FileBytes: perStream[info.Config.Name],
		}
		u.LiveBytes += int64(info.State.Bytes)
		u.Streams = append(u.Streams, su)
	}
	if err := lister.Err(); err != nil {
		return u, fmt.Errorf("listing streams: %w", err)
	}
	sort.Slice(u.Streams, func(i, j int) bool { return u.Streams[i].Name < u.Streams[j].Name })
	if b.srv == nil {
		u.StoreBytes = u.LiveBytes
	}
	u.ReclaimableBytes = max(0, u.StoreBytes-u.LiveBytes)
	return u, nil
}

// walkStore walks the embedded server's store dir (nothing on an
// external server).
func (b *Bus) walkStore(fn fs.WalkDirFunc) error {
	if b.srv == nil {
		return nil
	}
	return filepath.WalkDir(b.storeDir, fn)
}

func cutSep(p string) (first, rest string, ok bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == filepath.Separator {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// DirBytes is the disk space the files under dir take (0 when it does not
// exist yet).
func DirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// StreamWriteError is the write error JetStream stopped writing to the
// stream name after (see WriteErrors), or nil while the stream takes
// writes.
func (b *Bus) StreamWriteError(name string) error {
	if b.srv == nil {
		return nil // an external server's health is its operator's
	}
	h := b.srv.Healthz(&server.HealthzOptions{Details: true})
	for _, e := range h.Errors {
		if e.Type == server.HealthzErrorStream && e.Stream == name && strings.Contains(e.Error, "write error") {
			return errors.New(e.Error)
		}
	}
	return nil
}

// WriteErrors lists the streams JetStream stopped writing to after a
// failed write (a disk that filled under it): such a stream refuses every
// write until its store is reloaded, which today takes a restart. Owl
// refuses writes below the disk reserve so that this does not happen; a
// disk filled by someone else from under the reserve to zero can still
// cause it, and the collector reports it.
func (b *Bus) WriteErrors() []string {
	if b.srv == nil {
		return nil
	}
	h := b.srv.Healthz(&server.HealthzOptions{Details: true})
	var out []string
	for _, e := range h.Errors {
		if e.Type == server.HealthzErrorStream && strings.Contains(e.Error, "write error") {
			out = append(out, e.Error)
		}
	}
	return out
}
