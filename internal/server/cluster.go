package server

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"

	"github.com/owl-project/owl/internal/cluster"
	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/leases"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/runtimes"
	"github.com/owl-project/owl/internal/sandbox"
	"github.com/owl-project/owl/internal/worker"
)

// Version is the Owl version this node advertises to the others in a
// cluster (set by the command from its build).
var Version = "dev"

// clustered reports whether this node shares its NATS with other nodes
// (--nats, or an embedded server clustered with others'), and so joins
// the node registry and places invocations (cluster.go).
func clustered(cfg config.Config) bool { return cfg.Clustered() }

// runsEnvironments reports whether this node's role runs environments.
func runsEnvironments(cfg config.Config) bool { return cfg.Role != config.RoleAPI }

// connectBus is the node's NATS: the existing one --nats names, else the
// embedded server.
func connectBus(ctx context.Context, cfg config.Config, s *Server) (*natsbus.Bus, error) {
	if cfg.NATS == "" {
		return natsbus.StartEmbeddedWith(ctx, cfg.DataDir, s.logger, natsbus.Options{SyncAlways: cfg.SyncAlways,
			Listen: cfg.NATSListen, ClientUser: "owl", ClientPassword: s.creds.NATSPassword,
			ServerName: nodeName(cfg), Cluster: clusterOptions(cfg)})
	}
	return natsbus.Connect(ctx, NATSRemote(cfg), s.logger)
}

// NATSRemote is how cfg reaches its existing NATS (--nats and its
// credentials and TLS files): owl serve connects with it, owl doctor
// checks it.
func NATSRemote(cfg config.Config) natsbus.Remote {
	return natsbus.Remote{URL: cfg.NATS, Creds: cfg.NATSCreds, NKeySeed: cfg.NATSNKey,
		User: cfg.NATSUser, Password: cfg.NATSUserPassword, Token: cfg.NATSToken,
		CA: cfg.NATSCA, Cert: cfg.NATSCert, Key: cfg.NATSKey, Name: "owl-" + nodeName(cfg)}
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// nodeName is --node-name, else the host's name made a valid one.
func nodeName(cfg config.Config) string {
	if cfg.NodeName != "" {
		return cfg.NodeName
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "owl"
	}
	h = unsafeName.ReplaceAllString(h, "-")
	return h[:min(len(h), 64)]
}

// nodeRuntimes are the runtimes this node runs: those the machine can,
// limited to --runtimes when set; none on an api node.
func nodeRuntimes(cfg config.Config) []string {
	if !runsEnvironments(cfg) {
		return nil
	}
	ids := runtimes.IDs()
	if len(cfg.Runtimes) == 0 {
		return ids
	}
	return slices.DeleteFunc(ids, func(id string) bool { return !slices.Contains(cfg.Runtimes, id) })
}

// joinCluster advertises this node in the node registry and makes the
// placer the invocations go through; the worker runs what is placed here
// unless this is an api node.
func (s *Server) joinCluster(ctx context.Context) error {
	rts := nodeRuntimes(s.cfg)
	self := cluster.Self{Name: nodeName(s.cfg), Role: s.cfg.Role, Version: Version, Runtimes: rts}
	var local cluster.Runner
	if runsEnvironments(s.cfg) {
		self.State = s.nodeState
		local = s.runLocal
	}
	var err error
	if s.members, err = cluster.Join(ctx, s.bus.JS, s.bus.NC, self, s.logger.With("component", "cluster")); err != nil {
		return err
	}
	if s.placer, err = cluster.NewPlacer(s.members, s.bus.NC, local, rts, s.logger.With("component", "cluster")); err != nil {
		return fmt.Errorf("placing invocations: %w", err)
	}
	return nil
}

// nodeState fills this node's record with its capacity and environments.
func (s *Server) nodeState(n *lambdawire.Node) {
	budget, reserved := s.worker.MemoryBytes()
	n.MemoryMB, n.MemoryFreeMB = int(budget>>20), int((budget-reserved)>>20)
	n.ConcurrencyLimit, n.Inflight = s.worker.ConcurrencyLimit(), s.worker.Stats().Inflight
	n.Environments = s.worker.VersionEnvironments()
	ctx, cancel := context.WithTimeout(context.Background(), cluster.HeartbeatEvery/2)
	defer cancel()
	for _, p := range s.health(ctx) {
		n.Problems = append(n.Problems, p.Check)
	}
}

// runLocal runs an invocation placed on this node on its worker.
func (s *Server) runLocal(ctx context.Context, req cluster.Request) (*cluster.Result, error) {
	res, err := s.worker.Invoke(ctx, req.Function, worker.Request{
		RequestID: req.RequestID, Payload: req.Payload, ClientContext: req.ClientContext, TraceID: req.TraceID,
		InvokedARN: req.InvokedARN, Depth: req.Depth, Origin: req.Origin,
	})
	if res == nil {
		return nil, err
	}
	return &cluster.Result{Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType, Log: res.Log}, err
}

// placedInvoker puts placement behind the API's invoker seam: each
// invocation runs on the node the placer chooses. A streamed response
// runs here (it is not forwarded between nodes).
type placedInvoker struct {
	p     *cluster.Placer
	m     *cluster.Membership
	local workerInvoker // nil worker: this node runs no environments
}

func (i placedInvoker) Invoke(ctx context.Context, req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	if req.Stream != nil {
		if i.local.w == nil {
			return nil, errNoStreamHere
		}
		return i.local.Invoke(ctx, req)
	}
	res, err := i.p.Invoke(ctx, cluster.Request{
		Function: req.Function, RequestID: req.RequestID, Payload: req.Payload, ClientContext: req.ClientContext,
		TraceID: req.TraceID, InvokedARN: req.InvokedARN, Depth: req.Depth, Origin: req.Origin,
	})
	if res == nil {
		return nil, err
	}
	return &lambdaapi.InvokeResult{Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType, Log: res.Log}, err
}

// Provisioned reports the provisioned environments of name's version the
// cluster's usable nodes hold (they are split over the workers:
// sharedProvisioning) and this node's last error starting one.
func (i placedInvoker) Provisioned(name, version string) (int, string) {
	failure := ""
	if i.local.w != nil {
		_, failure = i.local.Provisioned(name, version)
	}
	return i.m.ProvisionedReady(name, version), failure
}

// errNoStreamHere refuses a streamed invocation on an api node: response
// streams are not forwarded between nodes.
var errNoStreamHere = lambdaerr.New(lambdaerr.ServiceUnavailable,
	"Response streaming runs on the node that takes the request, and this one (--role api) runs no environments: stream through a node of role all.")

// nodes is the API's view of the node registry; alone, this node only.
func (s *Server) nodes() lambdaapi.Nodes {
	if s.members == nil {
		return soloNode{s}
	}
	return s.members
}

// soloNode is the node list of a node that is not in a cluster: itself.
type soloNode struct{ s *Server }

func (n soloNode) Nodes() []lambdawire.Node {
	rec := lambdawire.Node{Name: nodeName(n.s.cfg), Role: n.s.cfg.Role, Version: Version, Protocol: cluster.Protocol,
		Runtimes: nodeRuntimes(n.s.cfg), Health: cluster.HealthOK}
	n.s.nodeState(&rec)
	return []lambdawire.Node{rec}
}

func (soloNode) Drain(context.Context, string, bool) error {
	return lambdaerr.New(lambdaerr.InvalidParameterValue, "This node is not part of a cluster (owl serve --nats): there is nowhere else to place its work.")
}

// prewarm is --prewarm, none on an api node.
func prewarm(cfg config.Config) int {
	if !runsEnvironments(cfg) {
		return 0
	}
	return cfg.Prewarm
}

// provisioning gives the worker provisioned concurrency to keep: none on
// an api node; in a cluster, this node's share of each total.
func (s *Server) provisioning(p worker.Provisioning) worker.Provisioning {
	switch {
	case !runsEnvironments(s.cfg):
		return nil
	case clustered(s.cfg):
		return sharedProvisioning{p: p, s: s}
	}
	return p
}

// sharedProvisioning splits each provisioned concurrency total over the
// cluster's workers (cluster.Membership.ProvisionShare): the worker keeps
// this node's part, and when a worker dies or drains the others' parts
// grow at their next reconcile.
type sharedProvisioning struct {
	p worker.Provisioning
	s *Server
}

func (sp sharedProvisioning) ProvisionedTargets(ctx context.Context) ([]registry.ProvisionedTarget, error) {
	m := sp.s.members
	if m == nil {
		return nil, nil // not joined yet: nothing is known of the others
	}
	targets, err := sp.p.ProvisionedTargets(ctx)
	if err != nil {
		return nil, err
	}
	out := targets[:0]
	for _, t := range targets {
		if t.N = m.ProvisionShare(t.Function, t.N); t.N > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}

// openLeases makes the cluster-wide concurrency leases a worker of a
// cluster admits invocations with (internal/leases); none alone or on an
// api node.
func (s *Server) openLeases(ctx context.Context) (worker.Leases, error) {
	if !clustered(s.cfg) || !runsEnvironments(s.cfg) {
		return nil, nil
	}
	var err error
	s.leases, err = leases.Open(ctx, s.bus.JS, leases.Options{Node: nodeName(s.cfg),
		Logger: s.logger.With("component", "leases")})
	if err != nil {
		return nil, err
	}
	return s.leases, nil
}

// sandboxes is what the worker creates sandboxes with: none on an api
// node, whose worker is never given an invocation (placement skips api
// nodes); should one reach it, it is refused, never run.
func (s *Server) sandboxes() worker.Sandboxes {
	if s.sbm == nil {
		return noSandboxes{}
	}
	return worker.SandboxManager(s.sbm)
}

// noSandboxes refuses every sandbox.
type noSandboxes struct{}

func (noSandboxes) Create(context.Context, sandbox.Spec) (worker.Sandbox, error) {
	return nil, lambdaerr.New(lambdaerr.ServiceUnavailable, "This node (--role api) runs no environments.")
}
