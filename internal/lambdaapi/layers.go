package lambdaapi

import (
	"net/http"
	"strconv"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// layerVersion is Lambda's wire shape of a layer version.
type layerVersion struct {
	Content            *layerZip `json:"Content,omitempty"`
	LayerArn           string    `json:"LayerArn,omitempty"`
	LayerVersionArn    string    `json:"LayerVersionArn"`
	Description        string    `json:"Description"`
	CreatedDate        string    `json:"CreatedDate"`
	Version            int64     `json:"Version"`
	CompatibleRuntimes []string  `json:"CompatibleRuntimes,omitempty"`
	LicenseInfo        string    `json:"LicenseInfo,omitempty"`
}

type layerZip struct {
	Location   string `json:"Location"`
	CodeSha256 string `json:"CodeSha256"`
	CodeSize   int64  `json:"CodeSize"`
}

func (a *API) wireLayer(r *http.Request, l registry.Layer, withContent bool) layerVersion {
	out := layerVersion{
		LayerVersionArn:    a.reg.LayerARN(l.Name, l.Version),
		Description:        l.Description,
		CreatedDate:        l.CreatedDate.UTC().Format("2006-01-02T15:04:05.000-0700"),
		Version:            l.Version,
		CompatibleRuntimes: l.CompatibleRuntimes,
		LicenseInfo:        l.LicenseInfo,
	}
	if withContent {
		out.LayerArn = a.reg.LayerARN(l.Name, 0)
		out.Content = &layerZip{
			Location:   baseURL(r) + "/owl/v1/layers/" + l.Name + "/versions/" + strconv.FormatInt(l.Version, 10) + "/content",
			CodeSha256: registry.CodeSha256(l.CodeSha256Hex),
			CodeSize:   l.CodeSize,
		}
	}
	return out
}

func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

func layerPath(r *http.Request) (string, int64, error) {
	name := r.PathValue("name")
	if err := registry.ValidateLayerName(name); err != nil {
		return "", 0, err
	}
	s := r.PathValue("version")
	if s == "" {
		return name, 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 {
		return "", 0, lambdaerr.ValidationFailed(s, "versionNumber", "Member must be a positive integer")
	}
	return name, v, nil
}

func (a *API) publishLayerVersion(w http.ResponseWriter, r *http.Request, up *upload) error {
	name, _, err := layerPath(r)
	if err != nil {
		return err
	}
	var req struct {
		Description        string     `json:"Description"`
		Content            *codeInput `json:"Content"`
		CompatibleRuntimes []string   `json:"CompatibleRuntimes"`
		LicenseInfo        string     `json:"LicenseInfo"`
	}
	if err := up.decode(&req); err != nil {
		return err
	}
	zip, err := a.checkCode(req.Content, up)
	if err != nil {
		return err
	}
	l, err := a.reg.PublishLayer(r.Context(), registry.Layer{
		Name: name, Description: req.Description, LicenseInfo: req.LicenseInfo, CompatibleRuntimes: req.CompatibleRuntimes,
	}, zip)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, a.wireLayer(r, l, true))
	return nil
}

// layerFromPath loads the layer version named by the request's path.
func (a *API) layerFromPath(r *http.Request) (registry.Layer, error) {
	name, v, err := layerPath(r)
	if err != nil {
		return registry.Layer{}, err
	}
	return a.reg.GetLayer(r.Context(), name, v)
}

func (a *API) getLayerVersion(w http.ResponseWriter, r *http.Request, _ []byte) error {
	l, err := a.layerFromPath(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireLayer(r, l, true))
	return nil
}

func (a *API) layerContent(w http.ResponseWriter, r *http.Request, _ []byte) error {
	l, err := a.layerFromPath(r)
	if err != nil {
		return err
	}
	return a.writeZip(w, r, l.CodeSha256Hex, l.Name+"-"+strconv.FormatInt(l.Version, 10)+".zip")
}

func (a *API) listLayerVersions(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, _, err := layerPath(r)
	if err != nil {
		return err
	}
	ls, err := a.reg.ListLayerVersions(r.Context(), name)
	if err != nil {
		return err
	}
	out := struct {
		LayerVersions []layerVersion `json:"LayerVersions"`
	}{LayerVersions: []layerVersion{}}
	for _, l := range ls {
		out.LayerVersions = append(out.LayerVersions, a.wireLayer(r, l, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) listLayers(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ls, err := a.reg.ListLayers(r.Context())
	if err != nil {
		return err
	}
	type layer struct {
		LayerName             string       `json:"LayerName"`
		LayerArn              string       `json:"LayerArn"`
		LatestMatchingVersion layerVersion `json:"LatestMatchingVersion"`
	}
	out := struct {
		Layers []layer `json:"Layers"`
	}{Layers: []layer{}}
	for _, l := range ls {
		out.Layers = append(out.Layers, layer{LayerName: l.Name, LayerArn: a.reg.LayerARN(l.Name, 0), LatestMatchingVersion: a.wireLayer(r, l, false)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteLayerVersion(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, v, err := layerPath(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteLayer(r.Context(), name, v); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
