package lambdaapi

import (
	"context"
	"net/http"

	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// The event invoke config operations (2019-09-25): how asynchronous
// invocations of a function, version or alias are retried, how old their
// events may grow, and where their outcomes go (registry/eventconfig.go).

func (a *API) putEventInvokeConfig(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeEventInvokeConfig(w, r, body, false)
}

func (a *API) updateEventInvokeConfig(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeEventInvokeConfig(w, r, body, true)
}

// changeEventInvokeConfig is Put (merge false: the body replaces the
// config) and Update (merge true: only what the body gives changes).
func (a *API) changeEventInvokeConfig(w http.ResponseWriter, r *http.Request, body []byte, merge bool) error {
	var req lambdawire.FunctionEventInvokeConfig
	if err := decode(body, &req); err != nil {
		return err
	}
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	in := registry.EventInvokeConfigInput{MaximumRetryAttempts: req.MaximumRetryAttempts, MaximumEventAgeInSeconds: req.MaximumEventAgeInSeconds}
	if d := req.DestinationConfig; d != nil {
		in.OnSuccess, in.OnFailure = destinationInput(d.OnSuccess), destinationInput(d.OnFailure)
	}
	c, err := a.reg.PutEventInvokeConfig(r.Context(), name, q, in, merge)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireEventConfig(c))
	return nil
}

// destinationInput is a destination as the registry takes it: nil when
// the request left it out, "" when it gave one without an ARN (none).
func destinationInput(d *lambdawire.OnDestination) *string {
	if d == nil {
		return nil
	}
	if d.Destination == nil {
		return new(string)
	}
	return d.Destination
}

func (a *API) wireEventConfig(c registry.EventInvokeConfig) lambdawire.FunctionEventInvokeConfig {
	dest := func(arn string) *lambdawire.OnDestination {
		if arn == "" {
			return &lambdawire.OnDestination{}
		}
		return &lambdawire.OnDestination{Destination: &arn}
	}
	return lambdawire.FunctionEventInvokeConfig{
		LastModified:             float64(c.LastModified.UnixMilli()) / 1000,
		FunctionArn:              a.reg.ARN(c.FunctionName, c.Qualifier),
		MaximumRetryAttempts:     c.MaximumRetryAttempts,
		MaximumEventAgeInSeconds: c.MaximumEventAgeInSeconds,
		DestinationConfig:        &lambdawire.DestinationConfig{OnSuccess: dest(c.OnSuccess), OnFailure: dest(c.OnFailure)},
	}
}

func (a *API) getEventInvokeConfig(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	c, err := a.reg.GetEventInvokeConfig(r.Context(), name, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireEventConfig(c))
	return nil
}

func (a *API) listEventInvokeConfigs(w http.ResponseWriter, r *http.Request, _ []byte) error {
	configs, next, err := listPage(r, a.reg.ListEventInvokeConfigs,
		func(c registry.EventInvokeConfig) string { return c.Qualifier }, a.wireEventConfig)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.FunctionEventInvokeConfigList{FunctionEventInvokeConfigs: configs, NextMarker: next})
	return nil
}

func (a *API) deleteEventInvokeConfig(w http.ResponseWriter, r *http.Request, _ []byte) error {
	return deleteQualified(w, r, qualified, a.reg.DeleteEventInvokeConfig)
}

// deleteQualified runs del on the request's function and qualifier (as
// parse reads them) and answers 204 No Content.
func deleteQualified(w http.ResponseWriter, r *http.Request, parse func(*http.Request) (string, string, error),
	del func(ctx context.Context, name, qualifier string) error) error {
	name, q, err := parse(r)
	if err != nil {
		return err
	}
	if err := del(r.Context(), name, q); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
