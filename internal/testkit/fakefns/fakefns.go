// Package fakefns is a registry of function names for unit tests of the
// packages that resolve functions (events, triggers, routes) without a
// registry of their own. It is part of the test kit (internal/testkit),
// a package of its own because it imports the registry. Only tests
// import it.
package fakefns

import (
	"context"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// Functions knows the functions named in it ($LATEST of each); any other
// is not found.
type Functions map[string]bool

// ResolveForInvoke resolves name (any qualifier) if f has it.
func (f Functions) ResolveForInvoke(_ context.Context, name, qualifier string, _ float64) (registry.Target, error) {
	if !f[name] {
		return registry.Target{}, lambdaerr.New(lambdaerr.ResourceNotFound, "Function not found: %s", name)
	}
	return registry.Target{Function: registry.Function{Name: name, Version: registry.Latest}, Qualifier: qualifier}, nil
}

// ARN is name's ARN in the tests' account (0).
func (Functions) ARN(name, qualifier string) string {
	return "arn:aws:lambda:us-east-1:0:function:" + name
}
