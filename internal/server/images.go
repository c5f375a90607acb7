package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// imagePulls runs the pulls of image functions (lambdaapi.Images): each
// pulls the image its $LATEST names and records the outcome with
// registry.FinishPull. Pulls run in goroutines of their own, bounded by
// the server's lifetime: close cancels and waits for them. A pull a
// shutdown interrupted is started again by the next start (resume).
type imagePulls struct {
	store  *images.Store
	reg    *registry.Registry
	logger *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	// running are the pulls under way, per function and URI: a second
	// request for the same one waits for it instead of pulling again.
	running map[[2]string]chan struct{}
}

func newImagePulls(store *images.Store, reg *registry.Registry, logger *slog.Logger) *imagePulls {
	ctx, cancel := context.WithCancel(context.Background())
	return &imagePulls{store: store, reg: reg, logger: logger, ctx: ctx, cancel: cancel, running: map[[2]string]chan struct{}{}}
}

// StartPull implements lambdaapi.Images.
func (p *imagePulls) StartPull(name string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if _, err := p.Pull(p.ctx, name); err != nil && p.ctx.Err() == nil {
			p.logger.Warn("pulling an image", "function", name, "err", err)
		}
	}()
}

// Pull implements lambdaapi.Images: it pulls the image of name's $LATEST
// (the server's context or ctx ending stops it) and returns the function
// with the outcome recorded.
func (p *imagePulls) Pull(ctx context.Context, name string) (registry.Function, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(p.ctx, stop)()
	f, err := p.reg.Get(ctx, name)
	if err != nil || f.Image == nil {
		return f, err
	}
	key := [2]string{name, f.Image.URI}
	p.mu.Lock()
	if wait, ok := p.running[key]; ok {
		p.mu.Unlock()
		select {
		case <-wait:
			return p.reg.Get(ctx, name)
		case <-ctx.Done():
			return f, ctx.Err()
		}
	}
	done := make(chan struct{})
	p.running[key] = done
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.running, key)
		p.mu.Unlock()
		close(done)
	}()
	arch := ""
	if len(f.Architectures) > 0 {
		arch = f.Architectures[0]
	}
	img, err := p.store.Pull(ctx, f.Image.URI, arch)
	out := registry.PulledImage{URI: f.Image.URI}
	var ie *images.Error
	switch {
	case errors.As(err, &ie):
		out.ReasonCode, out.Reason = ie.Code, ie.Reason
		p.logger.Info("image refused", "function", name, "image", f.Image.URI, "code", ie.Code, "reason", ie.Reason)
	case diskspace.IsLow(err):
		// The node's fault, but one that lasts: say so rather than stay
		// Pending until a restart.
		out.ReasonCode, out.Reason = registry.ReasonInternal, fmt.Sprintf("No disk space on the node to unpack image %s (%v); free disk space, then update the function's code again.", f.Image.URI, err)
		p.logger.Warn("no disk space to unpack an image", "function", name, "image", f.Image.URI, "err", err)
	case err != nil:
		return f, fmt.Errorf("pulling the image of %s: %w", name, err) // the node's: left Pending, resumed at start
	default:
		out.ResolvedURI, out.Digest, out.Size = img.ResolvedURI, img.Digest, img.Size
		out.Entrypoint, out.Cmd, out.WorkingDir, out.Env = img.Entrypoint, img.Cmd, img.WorkingDir, img.Env
	}
	return p.reg.FinishPull(context.WithoutCancel(ctx), name, out)
}

// resume starts the pulls that a previous run left unfinished.
func (p *imagePulls) resume(ctx context.Context) error {
	fns, err := p.reg.List(ctx)
	if err != nil {
		return fmt.Errorf("listing functions to resume image pulls: %w", err)
	}
	for _, f := range fns {
		if f.Image != nil && (f.State == lambdawire.StatePending || f.LastUpdateStatus == lambdawire.UpdateInProgress) {
			p.StartPull(f.Name)
		}
	}
	return nil
}

// close stops the pulls under way and waits for them.
func (p *imagePulls) close() {
	p.cancel()
	p.wg.Wait()
}
