// Package runtimes is Owl's catalog of function runtimes: which runtime
// identifiers it accepts and how each one starts inside a sandbox. Runtimes
// are data, not code paths scattered through the platform.
package runtimes

import (
	"slices"
	"sort"
)

// Runtime describes how to start one runtime in a sandbox.
type Runtime struct {
	// ID is the Lambda runtime identifier, e.g. "provided.al2023".
	ID string
	// Entrypoints are tried in order; the first that exists in the sandbox
	// is executed (Lambda: /var/task/bootstrap, then /opt/bootstrap).
	Entrypoints []string
	// ExecutionEnv is AWS_EXECUTION_ENV; empty for provided runtimes.
	ExecutionEnv string
}

var catalog = map[string]Runtime{
	"provided.al2023": {ID: "provided.al2023", Entrypoints: []string{"/var/task/bootstrap", "/opt/bootstrap"}},
	"provided.al2":    {ID: "provided.al2", Entrypoints: []string{"/var/task/bootstrap", "/opt/bootstrap"}},
	"provided":        {ID: "provided", Entrypoints: []string{"/var/task/bootstrap", "/opt/bootstrap"}},
}

// Lookup returns the runtime with the given identifier.
func Lookup(id string) (Runtime, bool) {
	r, ok := catalog[id]
	return r, ok
}

// IDs lists the identifiers Owl can run, sorted.
func IDs() []string {
	ids := make([]string, 0, len(catalog))
	for id := range catalog {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// IsProvided reports whether id is a custom ("provided") runtime.
func IsProvided(id string) bool {
	return slices.Contains([]string{"provided", "provided.al2", "provided.al2023"}, id)
}
