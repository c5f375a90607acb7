package lambdaapi

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

func (a *API) wireAlias(al registry.Alias) lambdawire.AliasConfiguration {
	c := lambdawire.AliasConfiguration{
		AliasArn: a.reg.ARN(al.FunctionName, al.Name), Name: al.Name, FunctionVersion: al.FunctionVersion,
		Description: al.Description, RevisionId: al.RevisionID,
	}
	if len(al.AdditionalVersionWeights) > 0 {
		c.RoutingConfig = &lambdawire.RoutingConfig{AdditionalVersionWeights: al.AdditionalVersionWeights}
	}
	return c
}

// functionName is the {name} of a request about the function as a whole
// (its versions or aliases): a qualifier is refused.
func functionName(r *http.Request) (string, error) {
	name, q, err := qualified(r)
	if err != nil {
		return "", err
	}
	if q != "" {
		return "", lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Unsupported qualifier %s: this operation takes an unqualified function name.", q)
	}
	return name, nil
}

func (a *API) publishVersion(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		CodeSha256  string `json:"CodeSha256"`
		Description string `json:"Description"`
		RevisionId  string `json:"RevisionId"`
	}
	if len(body) > 0 {
		if err := decode(body, &req); err != nil {
			return err
		}
	}
	name, err := functionName(r)
	if err != nil {
		return err
	}
	opts := registry.PublishOptions{RevisionID: req.RevisionId, Description: req.Description}
	if req.CodeSha256 != "" {
		sum, err := base64.StdEncoding.DecodeString(req.CodeSha256)
		if err != nil {
			// Not a digest at all: it cannot match, and says so.
			sum = []byte(req.CodeSha256)
		}
		opts.CodeSha256Hex = hex.EncodeToString(sum)
	}
	v, err := a.reg.Publish(r.Context(), name, opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.wire(v))
	return nil
}

func (a *API) listVersions(w http.ResponseWriter, r *http.Request, _ []byte) error {
	versions, next, err := listPage(r, a.reg.ListVersions, listOrder, func(v registry.Function) lambdawire.FunctionConfiguration {
		c := a.wire(v)
		// ListVersionsByFunction qualifies $LATEST's ARN too.
		c.FunctionArn = a.reg.ARN(v.Name, c.Version)
		return c
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.VersionList{Versions: versions, NextMarker: next})
	return nil
}

// listPage is one page (by the request's Marker and MaxItems) of what
// list returns for the request's unqualified function, in the order that
// markers carry, each item rendered for the wire.
func listPage[T, W any](r *http.Request, list func(context.Context, string) ([]T, error), order func(T) string, wire func(T) W) ([]W, *string, error) {
	name, err := functionName(r)
	if err != nil {
		return nil, nil, err
	}
	all, err := list(r.Context(), name)
	if err != nil {
		return nil, nil, err
	}
	items, next, err := page(r.URL.Query(), all, order)
	if err != nil {
		return nil, nil, err
	}
	return render(items, wire), next, nil
}

// aliasRequest is the body of CreateAlias and UpdateAlias.
type aliasRequest struct {
	Name            string                    `json:"Name"`
	FunctionVersion *string                   `json:"FunctionVersion"`
	Description     *string                   `json:"Description"`
	RoutingConfig   *lambdawire.RoutingConfig `json:"RoutingConfig"`
	RevisionId      string                    `json:"RevisionId"`
}

func (req aliasRequest) input() registry.AliasInput {
	in := registry.AliasInput{FunctionVersion: req.FunctionVersion, Description: req.Description, RevisionID: req.RevisionId}
	if req.RoutingConfig != nil {
		in.AdditionalVersionWeights = req.RoutingConfig.AdditionalVersionWeights
		if in.AdditionalVersionWeights == nil {
			in.AdditionalVersionWeights = map[string]float64{}
		}
	}
	return in
}

// decodeAlias is the function name and body of CreateAlias or UpdateAlias.
func decodeAlias(r *http.Request, body []byte) (name string, req aliasRequest, err error) {
	if err := decode(body, &req); err != nil {
		return "", req, err
	}
	name, err = functionName(r)
	return name, req, err
}

func (a *API) createAlias(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, req, err := decodeAlias(r, body)
	if err != nil {
		return err
	}
	al, err := a.reg.CreateAlias(r.Context(), name, req.Name, req.input())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.wireAlias(al))
	return nil
}

func (a *API) getAlias(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	al, err := a.reg.GetAlias(r.Context(), name, r.PathValue("alias"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireAlias(al))
	return nil
}

func (a *API) updateAlias(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, req, err := decodeAlias(r, body)
	if err != nil {
		return err
	}
	al, err := a.reg.UpdateAlias(r.Context(), name, r.PathValue("alias"), req.input())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireAlias(al))
	return nil
}

func (a *API) deleteAlias(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteAlias(r.Context(), name, r.PathValue("alias")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listAliases(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	version := q.Get("FunctionVersion")
	if version != "" && version != registry.Latest && !registry.IsVersion(version) {
		return lambdaerr.ValidationFailed(version, "functionVersion", `Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)`)
	}
	all, err := a.reg.ListAliases(r.Context(), name)
	if err != nil {
		return err
	}
	var aliases []registry.Alias
	for _, al := range all {
		_, routed := al.AdditionalVersionWeights[version]
		if version == "" || al.FunctionVersion == version || routed {
			aliases = append(aliases, al)
		}
	}
	items, next, err := page(q, aliases, func(al registry.Alias) string { return al.Name })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.AliasList{Aliases: render(items, a.wireAlias), NextMarker: next})
	return nil
}
