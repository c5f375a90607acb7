package lambdaapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"

	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// wire renders a $LATEST or published version configuration; a
// version's ARN carries its number.
func (a *API) wire(f registry.Function) lambdawire.FunctionConfiguration {
	version, q := f.Version, f.Version
	if version == "" || version == registry.Latest {
		version, q = registry.Latest, ""
	}
	c := lambdawire.FunctionConfiguration{
		FunctionName:     f.Name,
		FunctionArn:      a.reg.ARN(f.Name, q),
		Runtime:          f.Runtime,
		Role:             f.Role,
		Handler:          f.Handler,
		CodeSize:         f.CodeSize,
		Description:      f.Description,
		Timeout:          f.Timeout,
		MemorySize:       f.MemorySize,
		LastModified:     f.LastModified.UTC().Format("2006-01-02T15:04:05.000-0700"),
		CodeSha256:       registry.CodeSha256(f.CodeSha256Hex),
		Version:          version,
		TracingConfig:    &lambdawire.TracingConfig{Mode: "PassThrough"},
		RevisionId:       f.RevisionID,
		PackageType:      f.PackageType,
		Architectures:    f.Architectures,
		EphemeralStorage: &lambdawire.EphemeralStorage{Size: f.EphemeralStorage},
		LoggingConfig:    wireLogging(f),
		Network:          a.network(f),
	}
	wireImage(&c, f)
	if f.Environment != nil {
		c.Environment = &lambdawire.EnvironmentState{Variables: f.Environment}
	}
	for _, l := range f.Layers {
		c.Layers = append(c.Layers, lambdawire.Layer{Arn: l.ARN, CodeSize: l.CodeSize})
	}
	if f.DeadLetterTarget != "" {
		c.DeadLetterConfig = &lambdawire.DeadLetterConfig{TargetArn: f.DeadLetterTarget}
	}
	return c
}

// wireLogging is f's LoggingConfig as Lambda reports it: levels only with
// JSON, the log group always.
func wireLogging(f registry.Function) *lambdawire.LoggingConfig {
	l := f.Logging
	return &lambdawire.LoggingConfig{LogFormat: l.FormatName(), ApplicationLogLevel: l.AppLevel,
		SystemLogLevel: l.SystemLevel, LogGroup: l.LogGroup(f.Name)}
}

// logging is f's Logging changed by a request's LoggingConfig (nil: as
// it is).
func logging(f registry.Function, c *lambdawire.LoggingConfig) (registry.Logging, error) {
	if c == nil {
		return f.Logging, nil
	}
	return f.Logging.Apply(registry.LoggingChange{LogFormat: c.LogFormat, ApplicationLogLevel: c.ApplicationLogLevel,
		SystemLogLevel: c.SystemLogLevel, LogGroup: c.LogGroup})
}

// deadLetterTarget checks a DeadLetterConfig of function name; nil leaves
// the target as it is (ok false), an empty TargetArn removes it.
func (a *API) deadLetterTarget(r *http.Request, name string, dl *lambdawire.DeadLetterConfig) (target string, ok bool, err error) {
	if dl == nil {
		return "", false, nil
	}
	if dl.TargetArn != "" {
		if err := a.reg.CheckDestination(r.Context(), name, dl.TargetArn); err != nil {
			return "", false, err
		}
	}
	return dl.TargetArn, true, nil
}

type codeInput struct {
	ZipFile         []byte  `json:"ZipFile"`
	S3Bucket        *string `json:"S3Bucket"`
	S3Key           *string `json:"S3Key"`
	S3ObjectVersion *string `json:"S3ObjectVersion"`
	ImageUri        *string `json:"ImageUri"`
}

type createRequest struct {
	FunctionName     string                       `json:"FunctionName"`
	Runtime          string                       `json:"Runtime"`
	Role             string                       `json:"Role"`
	Handler          string                       `json:"Handler"`
	Code             *codeInput                   `json:"Code"`
	Description      string                       `json:"Description"`
	Timeout          *int                         `json:"Timeout"`
	MemorySize       *int                         `json:"MemorySize"`
	Publish          bool                         `json:"Publish"`
	PackageType      string                       `json:"PackageType"`
	Environment      *lambdawire.Environment      `json:"Environment"`
	EphemeralStorage *lambdawire.EphemeralStorage `json:"EphemeralStorage"`
	Architectures    []string                     `json:"Architectures"`
	Tags             map[string]string            `json:"Tags"`
	Layers           []string                     `json:"Layers"`
	Network          *string                      `json:"Network"`
	DeadLetterConfig *lambdawire.DeadLetterConfig `json:"DeadLetterConfig"`
	LoggingConfig    *lambdawire.LoggingConfig    `json:"LoggingConfig"`
	ImageConfig      *lambdawire.ImageConfig      `json:"ImageConfig"`
}

// defaultNetwork is the network mode of functions that do not choose one.
func (a *API) defaultNetwork() string {
	if a.opts.NetworkEgress {
		return registry.NetworkEgress
	}
	return registry.NetworkNone
}

// network is a function's effective network mode.
func (a *API) network(f registry.Function) string {
	if f.Network == "" {
		return a.defaultNetwork()
	}
	return f.Network
}

func decode(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody()
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errNotJSON(err)
	}
	return nil
}

func errEmptyBody() error {
	return lambdaerr.New(lambdaerr.InvalidRequestContent, "The request body is empty; a JSON object is required.")
}

func errNotJSON(err error) error {
	return lambdaerr.New(lambdaerr.InvalidRequestContent, "Could not parse request body into json: %v", err)
}

func hostArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

func checkArchitectures(archs []string) error {
	if len(archs) == 0 {
		return nil
	}
	if len(archs) > 1 {
		return lambdaerr.ValidationFailed("["+archs[0]+", ...]", "architectures", "Member must have length less than or equal to 1")
	}
	if archs[0] != hostArch() {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Architecture %s is not supported on this Owl node; it runs %s.", archs[0], hostArch())
	}
	return nil
}

// checkCode validates an uploaded zip the way Lambda does, mapping
// codezip's findings to Lambda's errors. The zip is up's spooled file
// when c.ZipFile holds its marker.
func (a *API) checkCode(c *codeInput, up *upload) (*registry.Zip, error) {
	if c == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code is required: provide Code.ZipFile (a base64-encoded zip).")
	}
	if c.ImageUri != nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Please provide ZipFile for a function of PackageType Zip; ImageUri needs PackageType Image.")
	}
	if c.S3Bucket != nil || c.S3Key != nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code from S3 (S3Bucket/S3Key) is not supported yet; upload the zip in Code.ZipFile.")
	}
	data, size, err := up.code(c.ZipFile)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code.ZipFile is required and must not be empty.")
	}
	info, err := codezip.InspectAt(data, size, a.opts.ZipLimits)
	if err != nil {
		return nil, zipError(err)
	}
	return &registry.Zip{Sha256: info.Sha256, Size: size, Data: data}, nil
}

// zipError is Lambda's answer to codezip's finding err; an error that is
// not the zip's (reading the spooled file) is the service's.
func zipError(err error) error {
	var ze *codezip.Error
	if !errors.As(err, &ze) {
		return fmt.Errorf("inspecting the uploaded zip: %w", err)
	}
	msg := err.Error()
	var m interface{ Message() string }
	if errors.As(err, &m) {
		msg = m.Message()
	}
	switch {
	case errors.Is(err, codezip.ErrZippedTooLarge):
		return lambdaerr.Wrap(lambdaerr.RequestEntityTooLarge, err, "%s", msg)
	case errors.Is(err, codezip.ErrNotZip):
		return lambdaerr.Wrap(lambdaerr.InvalidParameterValue, err, "Could not unzip uploaded file. Please check your file, then try to upload again.")
	default:
		return lambdaerr.Wrap(lambdaerr.InvalidParameterValue, err, "%s", msg)
	}
}

func (a *API) createFunction(w http.ResponseWriter, r *http.Request, up *upload) error {
	var req createRequest
	if err := up.decode(&req); err != nil {
		return err
	}
	imageURI, err := a.packageOf(req.PackageType, req.Code, req.ImageConfig, req.Layers)
	if err != nil {
		return err
	}
	if err := checkArchitectures(req.Architectures); err != nil {
		return err
	}
	if err := registry.ValidateName(req.FunctionName); err != nil {
		return err
	}
	if err := registry.CheckTags(req.Tags); err != nil {
		return err
	}
	f := registry.Function{
		Name: req.FunctionName, Runtime: req.Runtime, Handler: req.Handler, Role: req.Role,
		Description: req.Description, MemorySize: 128, Timeout: 3, EphemeralStorage: 512,
		Architectures: []string{hostArch()}, PackageType: "Zip", Tags: req.Tags,
		// Stored resolved: a later change of the server's default does not
		// change what existing functions can reach.
		Network: a.defaultNetwork(),
	}
	if req.Network != nil {
		if err := registry.CheckNetwork(*req.Network, a.opts.NetworkEgress); err != nil {
			return err
		}
		f.Network = *req.Network
	}
	if req.MemorySize != nil {
		f.MemorySize = *req.MemorySize
	}
	if req.Timeout != nil {
		f.Timeout = *req.Timeout
	}
	if req.EphemeralStorage != nil {
		f.EphemeralStorage = req.EphemeralStorage.Size
	}
	if req.Environment != nil && req.Environment.Variables != nil {
		f.Environment = req.Environment.Variables
	}
	deadLetter, _, err := a.deadLetterTarget(r, f.Name, req.DeadLetterConfig)
	if err != nil {
		return err
	}
	f.DeadLetterTarget = deadLetter
	if f.Logging, err = logging(f, req.LoggingConfig); err != nil {
		return err
	}
	if imageURI != "" {
		return a.createImageFunction(w, r, f, imageURI, req.ImageConfig, req.Publish)
	}
	if err := f.Validate(); err != nil {
		return err
	}
	layers, err := a.reg.ResolveLayers(r.Context(), req.Layers)
	if err != nil {
		return err
	}
	f.Layers = layers
	zip, err := a.checkCode(req.Code, up)
	if err != nil {
		return err
	}
	created, err := a.reg.Create(r.Context(), f, zip)
	if err != nil {
		return err
	}
	return a.writeSaved(w, r, http.StatusCreated, created, req.Publish)
}

// writeSaved answers the $LATEST that CreateFunction or
// UpdateFunctionCode just saved; with Publish, it is published first and
// the answer is the new version.
func (a *API) writeSaved(w http.ResponseWriter, r *http.Request, status int, latest registry.Function, publish bool) error {
	if publish {
		var err error
		if latest, err = a.reg.Publish(r.Context(), latest.Name, registry.PublishOptions{}); err != nil {
			return err
		}
	}
	writeJSON(w, status, a.wire(latest))
	return nil
}

// wireTarget renders what a qualified request resolved to: through an
// alias, the ARN carries the alias.
func (a *API) wireTarget(t registry.Target) lambdawire.FunctionConfiguration {
	c := a.wire(t.Function)
	if t.Alias != nil {
		c.FunctionArn = a.reg.ARN(t.Name, t.Alias.Name)
	}
	return c
}

func (a *API) getFunction(w http.ResponseWriter, r *http.Request, _ []byte) error {
	t, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	fn := t.Function
	location := baseURL(r) + "/owl/v1/functions/" + fn.Name + "/code"
	if v := fn.Version; v != "" && v != registry.Latest {
		location += "?Qualifier=" + v
	}
	out := lambdawire.GetFunctionOutput{
		Configuration: a.wireTarget(t),
		Code:          &lambdawire.FunctionCodeLocation{RepositoryType: "S3", Location: location},
	}
	if fn.Image != nil {
		out.Code = imageLocation(fn)
	}
	// Tags and reserved concurrency are the function's, whatever version
	// was asked for: $LATEST keeps them.
	if latest, err := a.reg.Get(r.Context(), fn.Name); err == nil {
		if len(latest.Tags) > 0 {
			out.Tags = latest.Tags
		}
		if latest.ReservedConcurrency != nil {
			out.Concurrency = &lambdawire.Concurrency{ReservedConcurrentExecutions: latest.ReservedConcurrency}
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getFunctionConfiguration(w http.ResponseWriter, r *http.Request, _ []byte) error {
	t, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireTarget(t))
	return nil
}

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request, _ []byte) error {
	q := r.URL.Query()
	allVersions := false
	if v := q.Get("FunctionVersion"); v != "" {
		if v != "ALL" {
			return lambdaerr.ValidationFailed(v, "functionVersion", "Member must satisfy enum value set: [ALL]")
		}
		allVersions = true
	}
	fns, err := a.reg.List(r.Context())
	if err != nil {
		return err
	}
	if allVersions {
		var all []registry.Function
		for _, f := range fns {
			vs, err := a.reg.ListVersions(r.Context(), f.Name)
			if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			all = append(all, vs...)
		}
		fns = all
	}
	items, next, err := page(q, fns, listOrder)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.FunctionList{Functions: render(items, a.wire), NextMarker: next})
	return nil
}

// render is items rendered for the wire by f; it is never nil, so that
// an empty page is [] on the wire, not null.
func render[T, W any](items []T, f func(T) W) []W {
	out := make([]W, 0, len(items))
	for _, it := range items {
		out = append(out, f(it))
	}
	return out
}

// page applies the Marker and MaxItems parameters (at most 50 a page) to
// items sorted by order; the marker is the last returned item's order key.
func page[T any](q url.Values, items []T, order func(T) string) ([]T, *string, error) {
	maxItems := 50
	if s := q.Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, nil, lambdaerr.ValidationFailed(s, "maxItems", "Member must be an integer")
		}
		if err := lambdaerr.IntRange(n, "maxItems", 1, 10000); err != nil {
			return nil, nil, err
		}
		maxItems = min(n, 50)
	}
	start := 0
	if m := q.Get("Marker"); m != "" {
		after, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil {
			return nil, nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Invalid Marker.")
		}
		for start < len(items) && order(items[start]) <= string(after) {
			start++
		}
	}
	end := min(start+maxItems, len(items))
	var next *string
	if end < len(items) {
		m := base64.RawURLEncoding.EncodeToString([]byte(order(items[end-1])))
		next = &m
	}
	return items[start:end], next, nil
}

// listOrder is a function version's place in ListFunctions' order (by
// name, then $LATEST, then versions ascending); markers carry it.
func listOrder(f registry.Function) string {
	n, _ := strconv.Atoi(f.Version) // $LATEST: 0
	return fmt.Sprintf("%s\x00%010d", f.Name, n)
}

func (a *API) updateFunctionCode(w http.ResponseWriter, r *http.Request, up *upload) error {
	var req struct {
		codeInput
		Publish       bool     `json:"Publish"`
		DryRun        bool     `json:"DryRun"`
		RevisionId    string   `json:"RevisionId"`
		Architectures []string `json:"Architectures"`
	}
	if err := up.decode(&req); err != nil {
		return err
	}
	fn, err := a.unqualified(r, "updating code")
	if err != nil {
		return err
	}
	if err := checkArchitectures(req.Architectures); err != nil {
		return err
	}
	if fn.PackageType == registry.PackageImage || req.ImageUri != nil {
		return a.updateImageCode(w, r, fn, &req.codeInput, req.RevisionId, req.DryRun, req.Publish)
	}
	zip, err := a.checkCode(&req.codeInput, up)
	if err != nil {
		return err
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, a.wire(fn))
		return nil
	}
	updated, err := a.reg.Update(r.Context(), fn.Name, req.RevisionId, zip, nil)
	if err != nil {
		return err
	}
	return a.writeSaved(w, r, http.StatusOK, updated, req.Publish)
}

// unqualified loads $LATEST for an operation that only applies to it.
func (a *API) unqualified(r *http.Request, what string) (registry.Function, error) {
	name, q, err := qualified(r)
	if err != nil {
		return registry.Function{}, err
	}
	fn, err := a.reg.Get(r.Context(), name)
	if err != nil {
		return registry.Function{}, err
	}
	if q != "" && q != registry.Latest {
		return registry.Function{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Qualifiers are not allowed when %s.", what)
	}
	return fn, nil
}

func (a *API) updateFunctionConfiguration(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		Role             *string                      `json:"Role"`
		Handler          *string                      `json:"Handler"`
		Description      *string                      `json:"Description"`
		Timeout          *int                         `json:"Timeout"`
		MemorySize       *int                         `json:"MemorySize"`
		Environment      *lambdawire.Environment      `json:"Environment"`
		Runtime          *string                      `json:"Runtime"`
		EphemeralStorage *lambdawire.EphemeralStorage `json:"EphemeralStorage"`
		RevisionId       string                       `json:"RevisionId"`
		Layers           *[]string                    `json:"Layers"`
		Network          *string                      `json:"Network"`
		DeadLetterConfig *lambdawire.DeadLetterConfig `json:"DeadLetterConfig"`
		LoggingConfig    *lambdawire.LoggingConfig    `json:"LoggingConfig"`
		ImageConfig      *lambdawire.ImageConfig      `json:"ImageConfig"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	if req.Network != nil {
		if err := registry.CheckNetwork(*req.Network, a.opts.NetworkEgress); err != nil {
			return err
		}
	}
	layers, err := a.layersOf(r, req.Layers)
	if err != nil {
		return err
	}
	fn, err := a.unqualified(r, "updating the configuration")
	if err != nil {
		return err
	}
	deadLetter, setDeadLetter, err := a.deadLetterTarget(r, fn.Name, req.DeadLetterConfig)
	if err != nil {
		return err
	}
	logs, err := logging(fn, req.LoggingConfig)
	if err != nil {
		return err
	}
	if req.ImageConfig != nil && fn.Image == nil {
		return errImageConfigOfZip()
	}
	updated, err := a.reg.Update(r.Context(), fn.Name, req.RevisionId, nil, func(f *registry.Function) {
		set(&f.Role, req.Role)
		set(&f.Handler, req.Handler)
		set(&f.Description, req.Description)
		set(&f.Runtime, req.Runtime)
		set(&f.Timeout, req.Timeout)
		set(&f.MemorySize, req.MemorySize)
		if req.EphemeralStorage != nil {
			f.EphemeralStorage = req.EphemeralStorage.Size
		}
		if req.Layers != nil {
			f.Layers = layers
		}
		set(&f.Network, req.Network)
		if setDeadLetter {
			f.DeadLetterTarget = deadLetter
		}
		if req.LoggingConfig != nil {
			f.Logging = logs
		}
		if req.Environment != nil {
			f.Environment = req.Environment.Variables
			if len(f.Environment) == 0 {
				f.Environment = nil
			}
		}
		setImageConfig(f, req.ImageConfig)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wire(updated))
	return nil
}

// layersOf resolves an update's Layers (nil: unchanged, none resolved).
func (a *API) layersOf(r *http.Request, arns *[]string) ([]registry.FunctionLayer, error) {
	if arns == nil {
		return nil, nil
	}
	return a.reg.ResolveLayers(r.Context(), *arns)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	switch {
	case q == registry.Latest:
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "$LATEST version cannot be deleted without deleting the function.")
	case q == "":
		if err := a.reg.Delete(r.Context(), name); err != nil {
			return err
		}
	case registry.IsVersion(q):
		if err := a.reg.DeleteVersion(r.Context(), name, q); err != nil {
			return err
		}
	default:
		if _, err := a.reg.GetAlias(r.Context(), name, q); err != nil {
			return err
		}
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Deletion of aliases is not supported by DeleteFunction; use DeleteAlias for alias %s.", q)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getAccountSettings(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fns, err := a.reg.List(r.Context())
	if err != nil {
		return err
	}
	used, err := a.reg.CodeStorageUsed(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"AccountLimit": map[string]any{
			"TotalCodeSize":                  a.opts.CodeStorageLimit,
			"CodeSizeUnzipped":               a.opts.ZipLimits.MaxUnzipped,
			"CodeSizeZipped":                 a.opts.ZipLimits.MaxZipped,
			"ConcurrentExecutions":           a.opts.ConcurrencyLimit,
			"UnreservedConcurrentExecutions": a.opts.ConcurrencyLimit - a.reg.ReservedTotal(),
		},
		"AccountUsage": map[string]any{"TotalCodeSize": used, "FunctionCount": len(fns)},
	})
	return nil
}
