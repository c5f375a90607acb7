package lambdaapi

import (
	"context"
	"net/http"

	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// Functions of PackageType Image: the API stores the function with its
// ImageUri, State Pending (LastUpdateStatus InProgress on an update), and
// hands the pull to the Images seam, which records the outcome in the
// registry (registry.FinishPull): Active, or Failed with Lambda's reason.
// With Publish the request waits for the pull, so the version it publishes
// is of the new image.

// Images pulls the images of image functions (server/images.go).
type Images interface {
	// StartPull pulls the image of function name's $LATEST in the
	// background and records the outcome in the registry.
	StartPull(name string)
	// Pull does the same and returns when the outcome is recorded.
	Pull(ctx context.Context, name string) (registry.Function, error)
}

// imageCode checks the code of an image function: an ImageUri and nothing
// else. It returns the URI.
func (a *API) imageCode(c *codeInput) (string, error) {
	if a.opts.Images == nil {
		return "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Container images are not enabled on this Owl server.")
	}
	if c == nil || c.ImageUri == nil || *c.ImageUri == "" {
		return "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Code.ImageUri is required for a function of PackageType Image.")
	}
	if c.ZipFile != nil || c.S3Bucket != nil || c.S3Key != nil {
		return "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Please provide only one of ImageUri or ZipFile/S3 code for a function of PackageType Image.")
	}
	if err := images.ParseURI(*c.ImageUri); err != nil {
		return "", lambdaerr.Wrap(lambdaerr.InvalidParameterValue, err, "Source image %s is not valid: %v", *c.ImageUri, err)
	}
	return *c.ImageUri, nil
}

// packageOf checks CreateFunction's PackageType against its code: for an
// image it returns the ImageUri, for a zip "".
func (a *API) packageOf(packageType string, c *codeInput, ic *lambdawire.ImageConfig, layers []string) (string, error) {
	switch packageType {
	case "", registry.PackageZip:
		if ic != nil {
			return "", errImageConfigOfZip()
		}
		return "", nil
	case registry.PackageImage:
		if len(layers) > 0 {
			return "", lambdaerr.New(lambdaerr.InvalidParameterValue, "Layers are not supported for functions of PackageType Image: build them into the image.")
		}
		return a.imageCode(c)
	}
	return "", lambdaerr.ValidationFailed(packageType, "packageType", "Member must satisfy enum value set: [Image, Zip]")
}

func errImageConfigOfZip() error {
	return lambdaerr.New(lambdaerr.InvalidParameterValue, "ImageConfig is only for functions of PackageType Image.")
}

// setImageConfig replaces an image function's ImageConfig (nil: unchanged).
func setImageConfig(f *registry.Function, c *lambdawire.ImageConfig) {
	if c == nil || f.Image == nil {
		return
	}
	img := *f.Image
	img.Overrides = imageConfig(c)
	f.Image = &img
}

// imageConfig is a request's ImageConfig for the registry.
func imageConfig(c *lambdawire.ImageConfig) registry.ImageConfig {
	if c == nil {
		return registry.ImageConfig{}
	}
	return registry.ImageConfig{EntryPoint: c.EntryPoint, Command: c.Command, WorkingDirectory: c.WorkingDirectory}
}

// createImageFunction stores f, an image function of uri, as Pending and
// starts its pull (waits for it with publish).
func (a *API) createImageFunction(w http.ResponseWriter, r *http.Request, f registry.Function, uri string, ic *lambdawire.ImageConfig, publish bool) error {
	f.PackageType = registry.PackageImage
	f.Image = &registry.ImageCode{URI: uri, Overrides: imageConfig(ic)}
	f.State, f.LastUpdateStatus = lambdawire.StatePending, lambdawire.UpdateInProgress
	created, err := a.reg.Create(r.Context(), f, nil)
	if err != nil {
		return err
	}
	return a.pullThenAnswer(w, r, http.StatusCreated, created, publish)
}

// pullThenAnswer starts saved's pull and answers it; with publish it waits
// for the pull and publishes the outcome (refused if the pull failed).
func (a *API) pullThenAnswer(w http.ResponseWriter, r *http.Request, status int, saved registry.Function, publish bool) error {
	if !publish {
		a.opts.Images.StartPull(saved.Name)
		writeJSON(w, status, a.wire(saved))
		return nil
	}
	pulled, err := a.opts.Images.Pull(r.Context(), saved.Name)
	if err != nil {
		return err
	}
	return a.writeSaved(w, r, status, pulled, true)
}

// updateImageCode points fn at a new image: InProgress until pulled, the
// previous image running meanwhile.
func (a *API) updateImageCode(w http.ResponseWriter, r *http.Request, fn registry.Function, c *codeInput, revisionID string, dryRun, publish bool) error {
	if fn.PackageType != registry.PackageImage {
		if c.ImageUri != nil {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "Please provide ZipFile for a function of PackageType Zip; ImageUri is only for PackageType Image.")
		}
		return nil
	}
	uri, err := a.imageCode(c)
	if err != nil {
		return err
	}
	if dryRun {
		writeJSON(w, http.StatusOK, a.wire(fn))
		return nil
	}
	updated, err := a.reg.Update(r.Context(), fn.Name, revisionID, nil, func(f *registry.Function) {
		img := *f.Image
		img.URI = uri
		f.Image = &img
		f.LastUpdateStatus, f.LastUpdateStatusReason, f.LastUpdateStatusReasonCode = lambdawire.UpdateInProgress, "", ""
	})
	if err != nil {
		return err
	}
	return a.pullThenAnswer(w, r, http.StatusOK, updated, publish)
}

// wireImage adds an image function's fields to its configuration.
func wireImage(c *lambdawire.FunctionConfiguration, f registry.Function) {
	c.State, c.StateReason, c.StateReasonCode = orDefault(f.State, lambdawire.StateActive), f.StateReason, f.StateReasonCode
	c.LastUpdateStatus = orDefault(f.LastUpdateStatus, lambdawire.UpdateSuccessful)
	c.LastUpdateStatusReason, c.LastUpdateStatusReasonCode = f.LastUpdateStatusReason, f.LastUpdateStatusReasonCode
	if f.Image == nil {
		return
	}
	c.CodeSha256 = f.CodeSha256Hex // Lambda: the image manifest's digest, in hex
	o := f.Image.Overrides
	c.ImageConfigResponse = &lambdawire.ImageConfigResponse{}
	if o.EntryPoint != nil || o.Command != nil || o.WorkingDirectory != "" {
		c.ImageConfigResponse.ImageConfig = &lambdawire.ImageConfig{EntryPoint: o.EntryPoint, Command: o.Command, WorkingDirectory: o.WorkingDirectory}
	}
}

// imageLocation is GetFunction's Code of an image function, as Lambda's:
// the ECR repository type with the image as given and by digest.
func imageLocation(f registry.Function) *lambdawire.FunctionCodeLocation {
	return &lambdawire.FunctionCodeLocation{RepositoryType: "ECR", ImageUri: f.Image.URI, ResolvedImageUri: f.Image.ResolvedURI}
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
