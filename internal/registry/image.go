package registry

import (
	"context"
	"strings"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// Package types of a function.
const (
	PackageZip   = "Zip"
	PackageImage = "Image"
)

// ReasonInternal is Lambda's StateReasonCode for a failure of the
// service, not of the image (here: no disk space to unpack it).
const ReasonInternal = "InternalError"

// ImageCode is the container image of a function of PackageType Image.
type ImageCode struct {
	// URI is the ImageUri as given (registry/repository:tag or @digest).
	URI string `json:"uri"`
	// ResolvedURI is the image that runs, by digest (repo@sha256:...);
	// "" until the first pull succeeded. While a new URI is pulled
	// (LastUpdateStatus InProgress), the previous image keeps running.
	ResolvedURI string `json:"resolved_uri,omitempty"`
	// Entrypoint, Cmd, WorkingDir and Env are the resolved image's config.
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	Env        []string `json:"env,omitempty"`
	// Overrides are Lambda's ImageConfig.
	Overrides ImageConfig `json:"overrides,omitzero"`
}

// ImageConfig is Lambda's ImageConfig: what replaces the image's
// ENTRYPOINT, CMD and WORKDIR (nil: the image's).
type ImageConfig struct {
	EntryPoint       []string `json:"entry_point,omitempty"`
	Command          []string `json:"command,omitempty"`
	WorkingDirectory string   `json:"working_directory,omitempty"`
}

// Argv is what an image function runs: the entry point (ImageConfig's, else
// the image's), then the command, as Lambda composes them.
func (c *ImageCode) Argv() []string {
	ep := c.Entrypoint
	if c.Overrides.EntryPoint != nil {
		ep = c.Overrides.EntryPoint
	}
	return append(append([]string(nil), ep...), c.Command()...)
}

// Command is ImageConfig's Command, else the image's CMD.
func (c *ImageCode) Command() []string {
	if c.Overrides.Command != nil {
		return c.Overrides.Command
	}
	return c.Cmd
}

// WorkDir is the working directory: ImageConfig's, else the image's
// WORKDIR, else / (as a container runtime does; Lambda's base images set
// WORKDIR /var/task themselves).
func (c *ImageCode) WorkDir() string {
	switch {
	case c.Overrides.WorkingDirectory != "":
		return c.Overrides.WorkingDirectory
	case c.WorkingDir != "":
		return c.WorkingDir
	}
	return "/"
}

// validate checks an ImageConfig as Lambda does (at most 1500 entries
// each, an absolute working directory).
func (c ImageConfig) validate() error {
	if len(c.EntryPoint) > 1500 || len(c.Command) > 1500 {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "ImageConfig.EntryPoint and ImageConfig.Command may hold at most 1500 entries.")
	}
	if c.WorkingDirectory != "" && (!strings.HasPrefix(c.WorkingDirectory, "/") || len(c.WorkingDirectory) > 1000) {
		return lambdaerr.ValidationFailed(c.WorkingDirectory, "imageConfig.workingDirectory", "Member must be an absolute path of at most 1000 characters")
	}
	return nil
}

// Runnable reports whether f can be invoked: an image function once its
// image was pulled. Lambda answers ResourceConflictException for a
// function that is Pending or Failed.
func (f *Function) Runnable() error {
	if f.Image == nil || f.Image.ResolvedURI != "" {
		return nil
	}
	state := f.State
	if state == "" {
		state = lambdawire.StatePending
	}
	msg := "The operation cannot be performed at this time. The function is currently in the following state: " + state
	if f.StateReason != "" {
		msg += ": " + f.StateReason
	}
	return lambdaerr.New(lambdaerr.ResourceConflict, "%s", msg)
}

// PulledImage is a finished pull of an image function's code.
type PulledImage struct {
	// URI is the ImageUri the pull was for.
	URI string
	// ResolvedURI, Digest and the config are the image's (on success).
	ResolvedURI, Digest string
	Size                int64
	Entrypoint, Cmd     []string
	WorkingDir          string
	Env                 []string
	// ReasonCode and Reason say why it failed ("" on success).
	ReasonCode, Reason string
}

// FinishPull records the outcome of pulling function name's image: on
// success the image runs from now on (State Active, LastUpdateStatus
// Successful); on failure a function never pulled is Failed, one that was
// is left running its previous image with LastUpdateStatus Failed. An
// outcome for a URI the function no longer has (a newer update) is
// dropped.
func (r *Registry) FinishPull(ctx context.Context, name string, p PulledImage) (Function, error) {
	for {
		f, err := r.Get(ctx, name)
		if err != nil || f.Image == nil || f.Image.URI != p.URI {
			return f, err
		}
		rev := f.RevisionID
		g, err := r.Update(ctx, name, rev, nil, func(f *Function) { applyPull(f, p) })
		if lambdaerr.Is(err, lambdaerr.PreconditionFailed) || lambdaerr.Is(err, lambdaerr.ResourceConflict) {
			continue // changed meanwhile: look again
		}
		return g, err
	}
}

// applyPull is FinishPull's change.
func applyPull(f *Function, p PulledImage) {
	f.StateReason, f.StateReasonCode = "", ""
	f.LastUpdateStatusReason, f.LastUpdateStatusReasonCode = "", ""
	if p.ReasonCode != "" {
		f.LastUpdateStatus, f.LastUpdateStatusReason, f.LastUpdateStatusReasonCode = lambdawire.UpdateFailed, p.Reason, p.ReasonCode
		if f.Image.ResolvedURI == "" {
			f.State, f.StateReason, f.StateReasonCode = lambdawire.StateFailed, p.Reason, p.ReasonCode
		}
		return
	}
	img := f.Image
	img.ResolvedURI, img.Entrypoint, img.Cmd, img.WorkingDir, img.Env = p.ResolvedURI, p.Entrypoint, p.Cmd, p.WorkingDir, p.Env
	f.CodeSha256Hex, f.CodeSize = strings.TrimPrefix(p.Digest, "sha256:"), p.Size
	f.State, f.LastUpdateStatus = lambdawire.StateActive, lambdawire.UpdateSuccessful
}
