package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
)

const (
	layersBucket = "owl_layers"
	layerPrefix  = "v."   // v.<name>.<version> → Layer
	layerSeq     = "seq." // seq.<name> → last version number, never reused
)

// Layer is one immutable layer version; its zip lives in the code store.
type Layer struct {
	Name               string    `json:"name"`
	Version            int64     `json:"version"`
	Description        string    `json:"description"`
	LicenseInfo        string    `json:"license_info"`
	CompatibleRuntimes []string  `json:"compatible_runtimes,omitempty"`
	CodeSha256Hex      string    `json:"code_sha256"`
	CodeSize           int64     `json:"code_size"`
	CreatedDate        time.Time `json:"created_date"`
}

// LayerARN is a layer's ARN, with its version when version > 0.
func (r *Registry) LayerARN(name string, version int64) string {
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:layer:%s", r.opts.Region, r.opts.AccountID, name)
	if version > 0 {
		arn += ":" + strconv.FormatInt(version, 10)
	}
	return arn
}

// ParseLayerVersionARN splits arn:aws:lambda:<region>:<account>:layer:<name>:<version>.
func ParseLayerVersionARN(arn string) (name string, version int64, err error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 8 || parts[0] != "arn" || parts[2] != "lambda" || parts[5] != "layer" || !nameRe.MatchString(parts[6]) {
		return "", 0, lambdaerr.ValidationFailed(arn, "layers", "Member must satisfy regular expression pattern: arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+")
	}
	v, perr := strconv.ParseInt(parts[7], 10, 64)
	if perr != nil || v < 1 {
		return "", 0, lambdaerr.ValidationFailed(arn, "layers", "Member must end with a layer version number")
	}
	return parts[6], v, nil
}

// ValidateLayerName checks a layer name.
func ValidateLayerName(name string) error {
	if name == "" || len(name) > MaxNameLen || !nameRe.MatchString(name) {
		return lambdaerr.ValidationFailed(name, "layerName", "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+")
	}
	return nil
}

func layerKey(name string, version int64) string {
	return layerPrefix + name + "." + strconv.FormatInt(version, 10)
}

// PublishLayer stores zip as the next version of layer l.Name.
func (r *Registry) PublishLayer(ctx context.Context, l Layer, zip *Zip) (Layer, error) {
	if err := ValidateLayerName(l.Name); err != nil {
		return Layer{}, err
	}
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	if err := r.writable(); err != nil {
		return Layer{}, err
	}
	if err := r.roomForCode(zip.Size); err != nil {
		return Layer{}, err // before a version number is taken
	}
	version, err := r.nextLayerVersion(ctx, l.Name)
	if err != nil {
		return Layer{}, err
	}
	var f Function
	if err := r.putCode(ctx, &f, zip); err != nil {
		return Layer{}, err
	}
	l.Version, l.CodeSha256Hex, l.CodeSize = version, f.CodeSha256Hex, f.CodeSize
	l.CreatedDate = r.opts.Now().UTC()
	data, err := json.Marshal(l)
	if err != nil {
		return Layer{}, fmt.Errorf("encoding layer %s: %w", l.Name, err)
	}
	if _, err := r.layers.Create(ctx, layerKey(l.Name, version), data); err != nil {
		return Layer{}, fmt.Errorf("storing layer %s version %d: %w", l.Name, version, err)
	}
	return l, nil
}

// nextLayerVersion increments the layer's version counter (compare-and-set).
func (r *Registry) nextLayerVersion(ctx context.Context, name string) (int64, error) {
	for range 10 {
		e, err := r.layers.Get(ctx, layerSeq+name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := r.layers.Create(ctx, layerSeq+name, []byte("1")); err == nil {
				return 1, nil
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("reading layer %s's versions: %w", name, err)
		}
		last, err := strconv.ParseInt(string(e.Value()), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("layer %s's version counter %q: %w", name, e.Value(), err)
		}
		if _, err := r.layers.Update(ctx, layerSeq+name, []byte(strconv.FormatInt(last+1, 10)), e.Revision()); err == nil {
			return last + 1, nil
		}
	}
	return 0, lambdaerr.New(lambdaerr.ResourceConflict, "Layer %s is being published concurrently; try again.", name)
}

// GetLayer returns one layer version.
func (r *Registry) GetLayer(ctx context.Context, name string, version int64) (Layer, error) {
	e, err := r.layers.Get(ctx, layerKey(name, version))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Layer{}, lambdaerr.New(lambdaerr.ResourceNotFound, "Layer version %s does not exist.", r.LayerARN(name, version))
	}
	if err != nil {
		return Layer{}, fmt.Errorf("reading layer %s:%d: %w", name, version, err)
	}
	var l Layer
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return Layer{}, fmt.Errorf("decoding layer %s:%d: %w", name, version, err)
	}
	return l, nil
}

// allLayers returns every stored layer version, by name then version.
func (r *Registry) allLayers(ctx context.Context) ([]Layer, error) {
	lister, err := r.layers.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	var out []Layer
	for k := range lister.Keys() {
		rest, ok := strings.CutPrefix(k, layerPrefix)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		v, err := strconv.ParseInt(rest[i+1:], 10, 64)
		if i < 0 || err != nil {
			continue
		}
		l, err := r.GetLayer(ctx, rest[:i], v)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out, nil
}

// ListLayerVersions returns a layer's versions, newest first.
func (r *Registry) ListLayerVersions(ctx context.Context, name string) ([]Layer, error) {
	all, err := r.allLayers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Layer
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Name == name {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// ListLayers returns the latest version of every layer, by name.
func (r *Registry) ListLayers(ctx context.Context) ([]Layer, error) {
	all, err := r.allLayers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Layer
	for i, l := range all {
		if i+1 == len(all) || all[i+1].Name != l.Name {
			out = append(out, l)
		}
	}
	return out, nil
}

// DeleteLayer deletes one layer version; functions using it keep it.
func (r *Registry) DeleteLayer(ctx context.Context, name string, version int64) error {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	l, err := r.GetLayer(ctx, name, version)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return nil // Lambda: deleting a missing version succeeds
	}
	if err != nil {
		return err
	}
	if err := r.layers.Delete(ctx, layerKey(name, version)); err != nil {
		return fmt.Errorf("deleting layer %s:%d: %w", name, version, err)
	}
	r.collectCode(ctx, l.CodeSha256Hex)
	return nil
}

// ResolveLayers turns layer version ARNs into the function's layer list,
// checking each exists.
func (r *Registry) ResolveLayers(ctx context.Context, arns []string) ([]FunctionLayer, error) {
	if len(arns) > MaxLayers {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Cannot reference more than %d layers.", MaxLayers)
	}
	out := make([]FunctionLayer, 0, len(arns))
	for _, arn := range arns {
		name, v, err := ParseLayerVersionARN(arn)
		if err != nil {
			return nil, err
		}
		l, err := r.GetLayer(ctx, name, v)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Layer version %s does not exist.", arn)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, FunctionLayer{ARN: r.LayerARN(name, v), CodeSha256Hex: l.CodeSha256Hex, CodeSize: l.CodeSize})
	}
	return out, nil
}
