package lambdaapi

import (
	"net/http"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// The function URL config operations (2021-10-31): an HTTP endpoint of
// $LATEST or an alias, served under /lambda-url/<id>/ (functionurl.go).

// urlPathPrefix is where function URLs are served on the API listener.
const urlPathPrefix = "/lambda-url/"

func (a *API) createURLConfig(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeURLConfig(w, r, body, false)
}

func (a *API) updateURLConfig(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeURLConfig(w, r, body, true)
}

func (a *API) changeURLConfig(w http.ResponseWriter, r *http.Request, body []byte, update bool) error {
	var in lambdawire.FunctionURLConfigInput
	if err := decode(body, &in); err != nil {
		return err
	}
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	ri := registry.URLConfigInput{AuthType: in.AuthType, InvokeMode: in.InvokeMode, Cors: corsInput(in.Cors)}
	var c registry.URLConfig
	status := http.StatusCreated
	if update {
		c, err = a.reg.UpdateURLConfig(r.Context(), name, q, ri)
		status = http.StatusOK
	} else {
		c, err = a.reg.CreateURLConfig(r.Context(), name, q, ri)
	}
	if err != nil {
		return err
	}
	out := a.wireURLConfig(r, c)
	if !update {
		out.LastModifiedTime = "" // CreateFunctionUrlConfig's answer has none
	}
	writeJSON(w, status, out)
	return nil
}

func (a *API) getURLConfig(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	c, err := a.reg.GetURLConfig(r.Context(), name, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireURLConfig(r, c))
	return nil
}

func (a *API) deleteURLConfig(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteURLConfig(r.Context(), name, q); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listURLConfigs(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, _, err := qualified(r)
	if err != nil {
		return err
	}
	cs, err := a.reg.ListURLConfigs(r.Context(), name)
	if err != nil {
		return err
	}
	out := lambdawire.FunctionURLConfigList{FunctionUrlConfigs: []lambdawire.FunctionURLConfig{}}
	for _, c := range cs {
		out.FunctionUrlConfigs = append(out.FunctionUrlConfigs, a.wireURLConfig(r, c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func corsInput(c *lambdawire.Cors) *registry.Cors {
	if c == nil {
		return nil
	}
	out := &registry.Cors{AllowHeaders: c.AllowHeaders, AllowMethods: c.AllowMethods, AllowOrigins: c.AllowOrigins, ExposeHeaders: c.ExposeHeaders}
	if c.AllowCredentials != nil {
		out.AllowCredentials = *c.AllowCredentials
	}
	if c.MaxAge != nil {
		out.MaxAge = *c.MaxAge
	}
	return out
}

const urlTimeFormat = "2006-01-02T15:04:05.000000Z"

func (a *API) wireURLConfig(r *http.Request, c registry.URLConfig) lambdawire.FunctionURLConfig {
	out := lambdawire.FunctionURLConfig{
		FunctionUrl: baseURL(r) + urlPathPrefix + c.URLID + "/",
		FunctionArn: a.reg.ARN(c.FunctionName, qualifierOf(c.Qualifier)),
		AuthType:    c.AuthType, InvokeMode: c.InvokeMode,
		CreationTime:     c.Created.UTC().Format(urlTimeFormat),
		LastModifiedTime: c.LastModified.UTC().Format(urlTimeFormat),
	}
	if cc := c.Cors; cc != nil {
		creds, maxAge := cc.AllowCredentials, cc.MaxAge
		out.Cors = &lambdawire.Cors{AllowCredentials: &creds, AllowHeaders: cc.AllowHeaders, AllowMethods: cc.AllowMethods,
			AllowOrigins: cc.AllowOrigins, ExposeHeaders: cc.ExposeHeaders, MaxAge: &maxAge}
	}
	return out
}

// qualifierOf is a stored qualifier as ARNs take it ($LATEST: none).
func qualifierOf(q string) string {
	if q == registry.Latest {
		return ""
	}
	return q
}
