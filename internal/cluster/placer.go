package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// Runner runs an invocation on this node's worker.
type Runner func(ctx context.Context, req Request) (*Result, error)

// Placer places invocations on the cluster's nodes and runs those placed
// here. It keeps, per node, the invocations it forwarded there and not
// yet answered: placement counts them against what the node advertised
// (a second old), and they fail at once when the node is lost.
type Placer struct {
	m        *Membership
	nc       *nats.Conn
	local    Runner // nil: this node runs no environments
	runtimes []string
	sub      *nats.Subscription
	logger   *slog.Logger

	mu    sync.Mutex
	calls map[string]*nodeCalls // by node id

	replies  *replies
	stats    placementStats
	handling sync.WaitGroup // invocations forwarded here, running
	stop     chan struct{}
	done     chan struct{}
}

// placementStats count what placement did (Stats).
type placementStats struct {
	local, forwarded, redirected, nodeLost, noNode atomic.Int64
}

// Stats counts, since the start, the invocations placement ran on this
// node (local) and sent to another (forwarded); the tries that went to
// the next node instead (redirected: no responder, or 429); those that
// failed because their node stopped (node_lost); and those no node
// could run (no_node).
func (p *Placer) Stats() map[string]int64 {
	return map[string]int64{"local": p.stats.local.Load(), "forwarded": p.stats.forwarded.Load(),
		"redirected": p.stats.redirected.Load(), "node_lost": p.stats.nodeLost.Load(), "no_node": p.stats.noNode.Load()}
}

// nodeCalls are the invocations forwarded to one node, not yet answered.
type nodeCalls struct {
	name      string
	n, memMB  int
	byVersion map[string]int
	cancels   map[*int]context.CancelCauseFunc
}

// errNodeLost is why a forwarded invocation's wait ends when its node is
// lost.
var errNodeLost = errors.New("the node running it stopped")

// errNotDelivered: the chosen node had no responder; the invocation
// never reached it and may go elsewhere.
var errNotDelivered = errors.New("not delivered")

// checkEvery is how often the nodes running forwarded invocations are
// checked (their record's age, and a ping NATS answers "no responders"
// to once the node's connection is gone).
const checkEvery = 250 * time.Millisecond

// pingTimeout bounds a ping of a node running forwarded invocations.
const pingTimeout = 300 * time.Millisecond

// NewPlacer places invocations on m's nodes. local, when set, runs what
// is placed on this node, forwarded or not, for the runtimes listed.
func NewPlacer(m *Membership, nc *nats.Conn, local Runner, runtimes []string, logger *slog.Logger) (*Placer, error) {
	p := &Placer{m: m, nc: nc, local: local, runtimes: runtimes, logger: logger,
		calls: map[string]*nodeCalls{}, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if p.replies, err = newReplies(nc); err != nil {
		return nil, err
	}
	if local != nil {
		sub, err := nc.Subscribe(invokeSubject(m.ID()), p.serve)
		if err != nil {
			return nil, fmt.Errorf("subscribing to this node's invocations: %w", err)
		}
		// A burst of forwarded invocations must not hit the client's
		// default limit of pending messages (64 MB, 512 K messages).
		_ = sub.SetPendingLimits(-1, -1)
		p.sub = sub
	}
	go p.watch()
	return p, nil
}

func invokeSubject(id string) string { return "owl.node." + id + ".invoke" }

// Invoke runs req on the node placement chooses: here, or forwarded.
// A node that turns out to have no responder (it just died) is avoided
// and the next one tried.
//
// A node that refuses it for lack of capacity (429: no memory, its
// concurrency) did not run it either: the next node is tried, and the
// refusal is the answer once none is left.
func (p *Placer) Invoke(ctx context.Context, req Request) (*Result, error) {
	tried := map[string]bool{}
	var throttled error
	for {
		n, err := p.choose(req.Function, tried)
		if err != nil {
			if throttled == nil {
				p.stats.noNode.Add(1)
			}
			return nil, cmp.Or(throttled, err)
		}
		var res *Result
		if n.ID == p.m.ID() && p.local != nil {
			p.stats.local.Add(1)
			res, err = p.local(ctx, req)
		} else {
			p.stats.forwarded.Add(1)
			res, err = p.forward(ctx, n, req)
		}
		switch {
		case errors.Is(err, errNotDelivered):
		case res == nil && lambdaerr.Is(err, lambdaerr.TooManyRequests):
			throttled = err
		default:
			if errors.Is(err, errNodeLost) {
				p.stats.nodeLost.Add(1)
			}
			return res, err
		}
		p.stats.redirected.Add(1)
		tried[n.ID] = true
	}
}

// runs reports whether node n can run fn: an image function runs on any
// worker (it brings its runtime), a zip function needs its runtime.
func runs(n lambdawire.Node, fn registry.Function) bool {
	return fn.PackageType == "Image" || slices.Contains(n.Runtimes, fn.Runtime)
}

// choose picks the node for fn: one with an idle (or frozen) environment
// of its version not already claimed by an invocation this node sent,
// then the most free memory less what this node sent there; this node
// on a tie. Lost, draining and incompatible nodes, api nodes and nodes
// without fn's runtime are never chosen.
func (p *Placer) choose(fn registry.Function, tried map[string]bool) (lambdawire.Node, error) {
	key := fn.Name + ":" + cmp.Or(fn.Version, registry.Latest)
	type cand struct {
		n    lambdawire.Node
		warm bool
		free int
		busy int
	}
	var best *cand
	var lacking []string
	p.mu.Lock()
	for _, n := range p.m.usable() {
		if tried[n.ID] {
			continue
		}
		if !runs(n, fn) {
			lacking = append(lacking, n.Name)
			continue
		}
		c := cand{n: n, free: n.MemoryFreeMB, busy: n.Inflight}
		envs := n.Environments[key]
		idle := envs["idle"] + envs["frozen"]
		if nc := p.calls[n.ID]; nc != nil {
			idle -= nc.byVersion[key]
			c.free -= nc.memMB
			c.busy += nc.n
		}
		c.warm = idle > 0
		if best == nil || better(c.warm, c.free, c.busy, n.ID == p.m.ID(), best.warm, best.free, best.busy) {
			best = &c
		}
	}
	p.mu.Unlock()
	if best == nil {
		msg := "No live node can run it now"
		if len(lacking) > 0 {
			msg += fmt.Sprintf(" (%s lack runtime %s)", strings.Join(lacking, ", "), fn.Runtime)
		}
		return lambdawire.Node{}, lambdaerr.New(lambdaerr.ServiceUnavailable, "%s: owl nodes lists the nodes and their runtimes.", msg)
	}
	return best.n, nil
}

// better orders two candidates: warm first, then more free memory, then
// fewer invocations running, then this node.
func better(warm bool, free, busy int, self bool, bWarm bool, bFree, bBusy int) bool {
	switch {
	case warm != bWarm:
		return warm
	case free != bFree:
		return free > bFree
	case busy != bBusy:
		return busy < bBusy
	}
	return self
}

// track counts an invocation of fn forwarded to n until the returned
// func; its wait is cancelled with errNodeLost if n is lost.
func (p *Placer) track(n lambdawire.Node, fn registry.Function, cancel context.CancelCauseFunc) func() {
	key := fn.Name + ":" + cmp.Or(fn.Version, registry.Latest)
	token := new(int)
	p.mu.Lock()
	nc := p.calls[n.ID]
	if nc == nil {
		nc = &nodeCalls{name: n.Name, byVersion: map[string]int{}, cancels: map[*int]context.CancelCauseFunc{}}
		p.calls[n.ID] = nc
	}
	nc.n++
	nc.memMB += fn.MemorySize
	nc.byVersion[key]++
	nc.cancels[token] = cancel
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		nc.n--
		nc.memMB -= fn.MemorySize
		nc.byVersion[key]--
		delete(nc.cancels, token)
		if nc.n == 0 {
			delete(p.calls, n.ID)
		}
	}
}

// forwardSlack is what a forwarded invocation may take past its
// function's timeout and init before its caller stops waiting: the
// queueing and the hop. A live node always answers before.
const forwardSlack = 30 * time.Second

// acceptedHeader marks the first of a forwarded invocation's two
// answers: the node took it. An invocation whose node is lost before
// that never reached it, and goes to another node.
const acceptedHeader = "Owl-Accepted"

// forward sends req to n and waits for its result, its node's loss, or
// the caller leaving. The node answers twice on the reply subject: at
// once that it took the invocation, then the result.
func (p *Placer) forward(ctx context.Context, n lambdawire.Node, req Request) (*Result, error) {
	data, err := frame(req, req.Payload)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	untrack := p.track(n, req.Function, cancel)
	defer untrack()
	wait := time.Duration(req.Function.Timeout)*time.Second + 10*time.Second + forwardSlack
	tctx, tcancel := context.WithTimeout(cctx, wait)
	defer tcancel()
	reply, answers := p.replies.open()
	defer p.replies.close(reply)
	if err := p.nc.PublishMsg(&nats.Msg{Subject: invokeSubject(n.ID), Reply: reply, Data: data}); err != nil {
		return nil, lambdaerr.Wrap(lambdaerr.Service, err, "Forwarding the invocation to node %s failed.", n.Name)
	}
	accepted := false
	for {
		select {
		case m := <-answers:
			switch {
			case m.Header.Get("Status") == "503": // NATS: no responders
				p.m.markLost(n.ID, n.Name)
				return nil, errNotDelivered
			case m.Header.Get(acceptedHeader) != "":
				accepted = true
				continue
			}
			return p.result(n, m.Data)
		case <-tctx.Done():
		}
		switch {
		case errors.Is(context.Cause(cctx), errNodeLost) && !accepted:
			return nil, errNotDelivered
		case errors.Is(context.Cause(cctx), errNodeLost):
			return nil, lambdaerr.Wrap(lambdaerr.Service, errNodeLost,
				"The node running this invocation (%s) stopped before it finished; it may or may not have run.", n.Name)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		return nil, lambdaerr.New(lambdaerr.Service, "Node %s did not answer within %v.", n.Name, wait)
	}
}

// result decodes a node's answer.
func (p *Placer) result(n lambdawire.Node, data []byte) (*Result, error) {
	var res Result
	payload, err := unframe(data, &res)
	if err != nil {
		return nil, lambdaerr.Wrap(lambdaerr.Service, err, "Node %s answered unreadably.", n.Name)
	}
	if res.Err != nil {
		return nil, res.Err.err()
	}
	res.Payload = payload
	return &res, nil
}

// replies routes the answers of forwarded invocations, all on one
// wildcard subscription of this connection's inbox, to their waiters.
type replies struct {
	prefix  string
	sub     *nats.Subscription
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *nats.Msg
}

func newReplies(nc *nats.Conn) (*replies, error) {
	r := &replies{prefix: nc.NewInbox() + ".", waiting: map[string]chan *nats.Msg{}}
	sub, err := nc.Subscribe(r.prefix+"*", func(m *nats.Msg) {
		r.mu.Lock()
		ch := r.waiting[m.Subject]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default: // two answers at most: never blocks
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to the answers of forwarded invocations: %w", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	return r, nil
}

// open is a new reply subject and the channel its answers come on.
func (r *replies) open() (string, chan *nats.Msg) {
	ch := make(chan *nats.Msg, 2)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	subject := r.prefix + strconv.FormatUint(r.next, 36)
	r.waiting[subject] = ch
	return subject, ch
}

func (r *replies) close(subject string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waiting, subject)
}

// watch fails the invocations forwarded to a node once it is lost: its
// record went stale, or NATS has no responder for it (its connection is
// gone: a SIGKILL shows in well under a second).
func (p *Placer) watch() {
	defer close(p.done)
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	var pinging sync.Map // node id → a ping in flight
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		ids := map[string]string{}
		for id, nc := range p.calls {
			ids[id] = nc.name
		}
		p.mu.Unlock()
		for id, name := range ids {
			if !p.m.alive(id) {
				p.lose(id)
				continue
			}
			if _, busy := pinging.LoadOrStore(id, true); busy {
				continue
			}
			go func() {
				defer pinging.Delete(id)
				// A ping sent just before the node died times out
				// (nothing is lost by that); the next one gets no
				// responder, so the timeout bounds how late that comes.
				_, err := p.nc.Request(controlSubject(id), nil, pingTimeout)
				if errors.Is(err, nats.ErrNoResponders) {
					p.m.markLost(id, name)
					p.lose(id)
				}
			}()
		}
	}
}

// lose fails every invocation forwarded to node id.
func (p *Placer) lose(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if nc := p.calls[id]; nc != nil {
		for _, cancel := range nc.cancels {
			cancel(errNodeLost)
		}
	}
}

// serve runs an invocation another node placed here and answers it.
func (p *Placer) serve(msg *nats.Msg) {
	accepted := nats.NewMsg(msg.Reply)
	accepted.Header.Set(acceptedHeader, "1")
	if err := msg.RespondMsg(accepted); err != nil {
		p.logger.Warn("accepting a forwarded invocation", "err", err)
	}
	p.handling.Add(1)
	go func() {
		defer p.handling.Done()
		res := p.run(msg.Data)
		data, err := frame(res, res.Payload)
		if err != nil {
			data, _ = frame(Result{Err: toWire(err)}, nil) // strings only: cannot fail
		}
		if err := msg.Respond(data); err != nil {
			p.logger.Warn("answering a forwarded invocation", "err", err)
		}
	}()
}

// run decodes and runs one forwarded invocation.
func (p *Placer) run(data []byte) *Result {
	var req Request
	payload, err := unframe(data, &req)
	if err != nil {
		return &Result{Err: toWire(lambdaerr.Wrap(lambdaerr.Service, err, "An unreadable forwarded invocation."))}
	}
	req.Payload = payload
	if req.Function.PackageType != "Image" && !slices.Contains(p.runtimes, req.Function.Runtime) {
		return &Result{Err: toWire(lambdaerr.New(lambdaerr.ServiceUnavailable, "Node %s does not run runtime %s.", p.m.self.Name, req.Function.Runtime))}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(req.Function.Timeout)*time.Second+forwardSlack)
	defer cancel()
	res, err := p.local(ctx, req)
	if res == nil {
		if err == nil {
			err = errors.New("no result")
		}
		return &Result{Err: toWire(err)}
	}
	if len(res.Log) > LogTailBytes {
		res.Log = res.Log[len(res.Log)-LogTailBytes:]
	}
	return res
}

// Close stops taking forwarded invocations, waits for those running here
// to be answered, and stops watching.
func (p *Placer) Close() {
	if p.sub != nil {
		_ = p.sub.Unsubscribe()
	}
	p.handling.Wait()
	_ = p.replies.sub.Unsubscribe()
	close(p.stop)
	<-p.done
}
