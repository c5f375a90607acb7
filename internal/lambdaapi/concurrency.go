package lambdaapi

import (
	"net/http"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// minUnreserved is the share of the account's concurrency that
// reservations and provisioned concurrency must leave to the other
// functions (Lambda: 100).
const minUnreserved = 100

func (a *API) maxReservable() int { return max(0, a.opts.ConcurrencyLimit-minUnreserved) }

func (a *API) putFunctionConcurrency(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	name, err := functionName(r)
	if err != nil {
		return err
	}
	if req.ReservedConcurrentExecutions == nil {
		return lambdaerr.ValidationFailed("null", "reservedConcurrentExecutions", "Member must not be null")
	}
	n, err := a.reg.PutReservedConcurrency(r.Context(), name, *req.ReservedConcurrentExecutions, a.maxReservable())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"ReservedConcurrentExecutions": n})
	return nil
}

func (a *API) getFunctionConcurrency(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	fn, err := a.reg.Get(r.Context(), name)
	if err != nil {
		return err
	}
	out := map[string]int{}
	if fn.ReservedConcurrency != nil {
		out["ReservedConcurrentExecutions"] = *fn.ReservedConcurrency
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteFunctionConcurrency(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	if err := a.reg.DeleteReservedConcurrency(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// provisionedConfig is Lambda's wire shape of a provisioned concurrency
// config; Available and Status come from this node's worker.
type provisionedConfig struct {
	FunctionArn                              string `json:"FunctionArn,omitempty"`
	RequestedProvisionedConcurrentExecutions int    `json:"RequestedProvisionedConcurrentExecutions"`
	AvailableProvisionedConcurrentExecutions int    `json:"AvailableProvisionedConcurrentExecutions"`
	AllocatedProvisionedConcurrentExecutions int    `json:"AllocatedProvisionedConcurrentExecutions"`
	Status                                   string `json:"Status"`
	StatusReason                             string `json:"StatusReason,omitempty"`
	LastModified                             string `json:"LastModified"`
}

func (a *API) wireProvisioned(r *http.Request, pc registry.ProvisionedConfig) provisionedConfig {
	out := provisionedConfig{
		FunctionArn:                              a.reg.ARN(pc.FunctionName, pc.Qualifier),
		RequestedProvisionedConcurrentExecutions: pc.Requested,
		Status:                                   "IN_PROGRESS",
		LastModified:                             pc.LastModified.UTC().Format("2006-01-02T15:04:05.000-0700"),
	}
	targets, err := a.reg.SplitProvisioned(r.Context(), pc)
	if err != nil {
		out.Status, out.StatusReason = "FAILED", err.Error()
		return out
	}
	for _, t := range targets {
		ready, failure := a.invoker.Provisioned(t.Function.Name, t.Function.Version)
		out.AvailableProvisionedConcurrentExecutions += min(ready, t.N)
		if failure != "" {
			out.Status, out.StatusReason = "FAILED", failure
		}
	}
	out.AllocatedProvisionedConcurrentExecutions = out.AvailableProvisionedConcurrentExecutions
	if out.AvailableProvisionedConcurrentExecutions >= pc.Requested {
		out.Status, out.StatusReason = "READY", ""
	}
	return out
}

// provisionedQualifier is the Qualifier a provisioned concurrency call
// needs: a version or alias, never $LATEST.
func provisionedQualifier(r *http.Request) (name, q string, err error) {
	name, q, err = qualified(r)
	if err != nil {
		return "", "", err
	}
	if q == "" {
		return "", "", lambdaerr.ValidationFailed("null", "qualifier", "Member must not be null")
	}
	return name, q, nil
}

func (a *API) putProvisioned(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		ProvisionedConcurrentExecutions *int `json:"ProvisionedConcurrentExecutions"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	name, q, err := provisionedQualifier(r)
	if err != nil {
		return err
	}
	if req.ProvisionedConcurrentExecutions == nil {
		return lambdaerr.ValidationFailed("null", "provisionedConcurrentExecutions", "Member must not be null")
	}
	pc, err := a.reg.PutProvisioned(r.Context(), name, q, *req.ProvisionedConcurrentExecutions, a.maxReservable()-a.reg.ReservedTotal())
	if err != nil {
		return err
	}
	a.writeProvisioned(w, r, http.StatusAccepted, pc)
	return nil
}

func (a *API) getProvisioned(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if r.URL.Query().Get("List") == "ALL" {
		return a.listProvisioned(w, r)
	}
	name, q, err := provisionedQualifier(r)
	if err != nil {
		return err
	}
	pc, err := a.reg.GetProvisioned(r.Context(), name, q)
	if err != nil {
		return err
	}
	a.writeProvisioned(w, r, http.StatusOK, pc)
	return nil
}

// writeProvisioned answers one config, as Put and Get do: without the
// FunctionArn that only the list's items carry.
func (a *API) writeProvisioned(w http.ResponseWriter, r *http.Request, status int, pc registry.ProvisionedConfig) {
	out := a.wireProvisioned(r, pc)
	out.FunctionArn = ""
	writeJSON(w, status, out)
}

func (a *API) listProvisioned(w http.ResponseWriter, r *http.Request) error {
	configs, next, err := listPage(r, a.reg.ListProvisioned,
		func(pc registry.ProvisionedConfig) string { return pc.Qualifier },
		func(pc registry.ProvisionedConfig) provisionedConfig { return a.wireProvisioned(r, pc) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		ProvisionedConcurrencyConfigs []provisionedConfig `json:"ProvisionedConcurrencyConfigs"`
		NextMarker                    *string             `json:"NextMarker,omitempty"`
	}{configs, next})
	return nil
}

func (a *API) deleteProvisioned(w http.ResponseWriter, r *http.Request, _ []byte) error {
	return deleteQualified(w, r, provisionedQualifier, a.reg.DeleteProvisioned)
}

// The recursion config (2024-08-31): whether Owl stops a chain of events
// that loops back to the function past registry.MaxChainDepth hops.

func (a *API) putRecursionConfig(w http.ResponseWriter, r *http.Request, body []byte) error {
	var req struct {
		RecursiveLoop *string `json:"RecursiveLoop"`
	}
	if err := decode(body, &req); err != nil {
		return err
	}
	name, err := functionName(r)
	if err != nil {
		return err
	}
	if req.RecursiveLoop == nil {
		return lambdaerr.ValidationFailed("null", "recursiveLoop", "Member must not be null")
	}
	if err := a.reg.PutRecursiveLoop(r.Context(), name, *req.RecursiveLoop); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"RecursiveLoop": *req.RecursiveLoop})
	return nil
}

func (a *API) getRecursionConfig(w http.ResponseWriter, r *http.Request, _ []byte) error {
	name, err := functionName(r)
	if err != nil {
		return err
	}
	fn, err := a.reg.Get(r.Context(), name)
	if err != nil {
		return err
	}
	setting := registry.RecursionTerminate
	if fn.RecursiveLoop == registry.RecursionAllow {
		setting = registry.RecursionAllow
	}
	writeJSON(w, http.StatusOK, map[string]string{"RecursiveLoop": setting})
	return nil
}
