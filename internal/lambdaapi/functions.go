package lambdaapi

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strconv"

	"github.com/owl-project/owl/internal/codezip"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// FunctionConfiguration is Lambda's wire shape of a function.
type FunctionConfiguration struct {
	FunctionName     string            `json:"FunctionName"`
	FunctionArn      string            `json:"FunctionArn"`
	Runtime          string            `json:"Runtime"`
	Role             string            `json:"Role"`
	Handler          string            `json:"Handler"`
	CodeSize         int64             `json:"CodeSize"`
	Description      string            `json:"Description"`
	Timeout          int               `json:"Timeout"`
	MemorySize       int               `json:"MemorySize"`
	LastModified     string            `json:"LastModified"`
	CodeSha256       string            `json:"CodeSha256"`
	Version          string            `json:"Version"`
	Environment      *environment      `json:"Environment,omitempty"`
	TracingConfig    map[string]string `json:"TracingConfig"`
	RevisionId       string            `json:"RevisionId"`
	State            string            `json:"State"`
	LastUpdateStatus string            `json:"LastUpdateStatus"`
	PackageType      string            `json:"PackageType"`
	Architectures    []string          `json:"Architectures"`
	EphemeralStorage ephemeralStorage  `json:"EphemeralStorage"`
	LoggingConfig    map[string]string `json:"LoggingConfig"`
	Layers           []layerRef        `json:"Layers,omitempty"`
	// Network is Owl's extension: "egress" or "none" (AWS SDKs ignore it).
	Network string `json:"Network,omitempty"`
}

type layerRef struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}

// codeSha256 is Lambda's CodeSha256: the base64 of the digest.
func codeSha256(shaHex string) string {
	sum, _ := hex.DecodeString(shaHex)
	return base64.StdEncoding.EncodeToString(sum)
}

type environment struct {
	Variables map[string]string `json:"Variables"`
}

type ephemeralStorage struct {
	Size int `json:"Size"`
}

func (a *API) wire(f registry.Function) FunctionConfiguration {
	c := FunctionConfiguration{
		FunctionName:     f.Name,
		FunctionArn:      a.reg.ARN(f.Name, ""),
		Runtime:          f.Runtime,
		Role:             f.Role,
		Handler:          f.Handler,
		CodeSize:         f.CodeSize,
		Description:      f.Description,
		Timeout:          f.Timeout,
		MemorySize:       f.MemorySize,
		LastModified:     f.LastModified.UTC().Format("2006-01-02T15:04:05.000-0700"),
		CodeSha256:       codeSha256(f.CodeSha256Hex),
		Version:          registry.Latest,
		TracingConfig:    map[string]string{"Mode": "PassThrough"},
		RevisionId:       f.RevisionID,
		State:            "Active",
		LastUpdateStatus: "Successful",
		PackageType:      f.PackageType,
		Architectures:    f.Architectures,
		EphemeralStorage: ephemeralStorage{Size: f.EphemeralStorage},
		LoggingConfig:    map[string]string{"LogFormat": "Text", "LogGroup": "/aws/lambda/" + f.Name},
		Network:          a.network(f),
	}
	if f.Environment != nil {
		c.Environment = &environment{Variables: f.Environment}
	}
	for _, l := range f.Layers {
		c.Layers = append(c.Layers, layerRef{Arn: l.ARN, CodeSize: l.CodeSize})
	}
	return c
}

type codeInput struct {
	ZipFile         []byte  `json:"ZipFile"`
	S3Bucket        *string `json:"S3Bucket"`
	S3Key           *string `json:"S3Key"`
	S3ObjectVersion *string `json:"S3ObjectVersion"`
	ImageUri        *string `json:"ImageUri"`
}

type createRequest struct {
	FunctionName     string            `json:"FunctionName"`
	Runtime          string            `json:"Runtime"`
	Role             string            `json:"Role"`
	Handler          string            `json:"Handler"`
	Code             *codeInput        `json:"Code"`
	Description      string            `json:"Description"`
	Timeout          *int              `json:"Timeout"`
	MemorySize       *int              `json:"MemorySize"`
	Publish          bool              `json:"Publish"`
	PackageType      string            `json:"PackageType"`
	Environment      *environment      `json:"Environment"`
	EphemeralStorage *ephemeralStorage `json:"EphemeralStorage"`
	Architectures    []string          `json:"Architectures"`
	Tags             map[string]string `json:"Tags"`
	Layers           []string          `json:"Layers"`
	Network          *string           `json:"Network"`
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
		return lambdaerr.New(lambdaerr.InvalidRequestContent, "The request body is empty; a JSON object is required.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return lambdaerr.New(lambdaerr.InvalidRequestContent, "Could not parse request body into json: %v", err)
	}
	return nil
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
// codezip's findings to Lambda's errors.
func (a *API) checkCode(c *codeInput) ([]byte, error) {
	if c == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code is required: provide Code.ZipFile (a base64-encoded zip).")
	}
	if c.ImageUri != nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Container images (ImageUri) are not supported yet; upload a zip in Code.ZipFile.")
	}
	if c.S3Bucket != nil || c.S3Key != nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code from S3 (S3Bucket/S3Key) is not supported yet; upload the zip in Code.ZipFile.")
	}
	if len(c.ZipFile) == 0 {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Code.ZipFile is required and must not be empty.")
	}
	if err := inspectZip(c.ZipFile, a.opts.ZipLimits); err != nil {
		return nil, err
	}
	return c.ZipFile, nil
}

func inspectZip(zip []byte, lim codezip.Limits) error {
	_, err := codezip.Inspect(zip, lim)
	if err == nil {
		return nil
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

func (a *API) createFunction(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req createRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	if req.PackageType != "" && req.PackageType != "Zip" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "PackageType %s is not supported yet; use Zip.", req.PackageType)
	}
	if err := checkArchitectures(req.Architectures); err != nil {
		return err
	}
	if err := registry.ValidateName(req.FunctionName); err != nil {
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
	if err := f.Validate(); err != nil {
		return err
	}
	layers, err := a.reg.ResolveLayers(r.Context(), req.Layers)
	if err != nil {
		return err
	}
	f.Layers = layers
	zip, err := a.checkCode(req.Code)
	if err != nil {
		return err
	}
	created, err := a.reg.Create(r.Context(), f, zip)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.wire(created))
	return nil
}

func (a *API) getFunction(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fn, _, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	out := map[string]any{
		"Configuration": a.wire(fn),
		"Code": map[string]string{
			"RepositoryType": "S3",
			"Location":       baseURL(r) + "/owl/v1/functions/" + fn.Name + "/code",
		},
	}
	if len(fn.Tags) > 0 {
		out["Tags"] = fn.Tags
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getFunctionConfiguration(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fn, _, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wire(fn))
	return nil
}

func (a *API) listFunctions(w http.ResponseWriter, r *http.Request, _ []byte) error {
	q := r.URL.Query()
	maxItems := 50
	if s := q.Get("MaxItems"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return lambdaerr.ValidationFailed(s, "maxItems", "Member must be an integer")
		}
		if err := lambdaerr.IntRange(n, "maxItems", 1, 10000); err != nil {
			return err
		}
		maxItems = min(n, 50)
	}
	if v := q.Get("FunctionVersion"); v != "" && v != "ALL" {
		return lambdaerr.ValidationFailed(v, "functionVersion", "Member must satisfy enum value set: [ALL]")
	}
	fns, err := a.reg.List(r.Context())
	if err != nil {
		return err
	}
	start := 0
	if m := q.Get("Marker"); m != "" {
		after, err := base64.RawURLEncoding.DecodeString(m)
		if err != nil {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "Invalid Marker.")
		}
		for start < len(fns) && fns[start].Name <= string(after) {
			start++
		}
	}
	end := min(start+maxItems, len(fns))
	out := struct {
		Functions  []FunctionConfiguration `json:"Functions"`
		NextMarker *string                 `json:"NextMarker,omitempty"`
	}{Functions: make([]FunctionConfiguration, 0, end-start)}
	for _, f := range fns[start:end] {
		out.Functions = append(out.Functions, a.wire(f))
	}
	if end < len(fns) {
		m := base64.RawURLEncoding.EncodeToString([]byte(fns[end-1].Name))
		out.NextMarker = &m
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) updateFunctionCode(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		codeInput
		Publish       bool     `json:"Publish"`
		DryRun        bool     `json:"DryRun"`
		RevisionId    string   `json:"RevisionId"`
		Architectures []string `json:"Architectures"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	fn, q, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	if q != "" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Qualifiers are not allowed when updating code.")
	}
	if err := checkArchitectures(req.Architectures); err != nil {
		return err
	}
	zip, err := a.checkCode(&req.codeInput)
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
	a.invoker.Retire(fn.Name)
	writeJSON(w, http.StatusOK, a.wire(updated))
	return nil
}

func (a *API) updateFunctionConfiguration(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		Role             *string           `json:"Role"`
		Handler          *string           `json:"Handler"`
		Description      *string           `json:"Description"`
		Timeout          *int              `json:"Timeout"`
		MemorySize       *int              `json:"MemorySize"`
		Environment      *environment      `json:"Environment"`
		Runtime          *string           `json:"Runtime"`
		EphemeralStorage *ephemeralStorage `json:"EphemeralStorage"`
		RevisionId       string            `json:"RevisionId"`
		Layers           *[]string         `json:"Layers"`
		Network          *string           `json:"Network"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	if req.Network != nil {
		if err := registry.CheckNetwork(*req.Network, a.opts.NetworkEgress); err != nil {
			return err
		}
	}
	var layers []registry.FunctionLayer
	if req.Layers != nil {
		var err error
		if layers, err = a.reg.ResolveLayers(r.Context(), *req.Layers); err != nil {
			return err
		}
	}
	fn, q, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	if q != "" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Qualifiers are not allowed when updating the configuration.")
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
		if req.Environment != nil {
			f.Environment = req.Environment.Variables
			if len(f.Environment) == 0 {
				f.Environment = nil
			}
		}
	})
	if err != nil {
		return err
	}
	a.invoker.Retire(fn.Name)
	writeJSON(w, http.StatusOK, a.wire(updated))
	return nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func (a *API) deleteFunction(w http.ResponseWriter, r *http.Request, _ []byte) error {
	fn, q, err := a.resolve(r.Context(), r)
	if err != nil {
		return err
	}
	if q == registry.Latest {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "$LATEST version cannot be deleted without deleting the function.")
	}
	if err := a.reg.Delete(r.Context(), fn.Name); err != nil {
		return err
	}
	a.invoker.Retire(fn.Name)
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
			"UnreservedConcurrentExecutions": a.opts.ConcurrencyLimit,
		},
		"AccountUsage": map[string]any{"TotalCodeSize": used, "FunctionCount": len(fns)},
	})
	return nil
}
