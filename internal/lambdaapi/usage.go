package lambdaapi

import (
	"context"
	"net/http"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// Usage answers what invocations were billed (internal/usage): sums per
// function over the hours from since to until, by "hour", "day" or ""
// (the whole range).
type Usage interface {
	Query(ctx context.Context, since, until time.Time, function, by string) ([]lambdawire.UsageRow, error)
}

// getUsage is GET /owl/v1/usage?since=&until=&function=&by=.
func (a *API) getUsage(w http.ResponseWriter, r *http.Request, _ []byte) error {
	if a.opts.Usage == nil {
		return lambdaerr.New(lambdaerr.UnknownOperation, "Usage is not kept on this node.")
	}
	q := r.URL.Query()
	function, err := functionParam(q.Get("function"))
	if err != nil {
		return err
	}
	by := q.Get("by")
	if by != "" && by != "hour" && by != "day" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "by %q is not hour or day (or empty: the whole range).", by)
	}
	since, err := timeParam(q.Get("since"), "since")
	if err != nil {
		return err
	}
	until, err := timeParam(q.Get("until"), "until")
	if err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && until.Before(since) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "until %s is before since %s.", until.Format(time.RFC3339), since.Format(time.RFC3339))
	}
	rows, err := a.opts.Usage.Query(r.Context(), since, until, function, by)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.UsageReport{Usage: rows})
	return nil
}

// functionParam checks a query's function parameter: empty (every
// function) or a valid name.
func functionParam(function string) (string, error) {
	if function == "" {
		return "", nil
	}
	if err := registry.ValidateName(function); err != nil {
		return "", err
	}
	return function, nil
}
