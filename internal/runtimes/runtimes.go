// Package runtimes is Owl's catalog of function runtimes: which runtime
// identifiers exist, which of them this machine can run (an interpreter of
// the right version is installed), and how each one starts inside a
// sandbox. Runtimes are data, not code paths scattered through the
// platform; Owl's own bootstraps for Python and Node.js live here too and
// are installed into a directory the sandbox sees as /var/runtime.
package runtimes

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
)

// Runtime describes how to start one runtime in a sandbox.
type Runtime struct {
	// ID is the Lambda runtime identifier, e.g. "python3.11".
	ID string
	// Entrypoints, for custom runtimes, are tried in order; the first that
	// exists is executed (Lambda: /var/task/bootstrap, then /opt/bootstrap).
	Entrypoints []string
	// Argv, for Owl's own runtimes, is the command inside the sandbox: the
	// interpreter and Owl's bootstrap under /var/runtime.
	Argv []string
	// Env is added to the function's environment (before its own variables).
	Env []string
	// ExecutionEnv is AWS_EXECUTION_ENV; empty for provided runtimes.
	ExecutionEnv string
	// available reports whether this machine can run it.
	available func() bool
}

// Provided reports whether r is a custom runtime (a bootstrap of the user's).
func (r Runtime) Provided() bool { return len(r.Entrypoints) > 0 }

var providedEntrypoints = []string{"/var/task/bootstrap", "/opt/bootstrap"}

func always() bool { return true }

// catalog lists every runtime Owl knows, available here or not.
var catalog = func() map[string]Runtime {
	c := map[string]Runtime{}
	for _, id := range []string{"provided", "provided.al2", "provided.al2023"} {
		c[id] = Runtime{ID: id, Entrypoints: providedEntrypoints, available: always}
	}
	for _, v := range []string{"3.9", "3.10", "3.11", "3.12", "3.13"} {
		id, interp := "python"+v, "/usr/bin/python"+v
		c[id] = Runtime{
			ID:           id,
			Argv:         []string{interp, "-u", "/var/runtime/python/bootstrap.py"},
			Env:          []string{"PYTHONDONTWRITEBYTECODE=1"},
			ExecutionEnv: "AWS_Lambda_" + id,
			available:    func() bool { return isExecutable(interp) },
		}
	}
	for _, major := range []string{"18", "20", "22"} {
		id := "nodejs" + major + ".x"
		c[id] = Runtime{
			ID:           id,
			Argv:         []string{"/usr/bin/node", "/var/runtime/node/bootstrap.mjs"},
			Env:          []string{"NODE_PATH=/opt/nodejs/node" + major + "/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/task"},
			ExecutionEnv: "AWS_Lambda_" + id,
			available:    func() bool { return nodeMajor() == major },
		}
	}
	return c
}()

// Lookup returns the runtime with the given identifier if this machine can
// run it.
func Lookup(id string) (Runtime, bool) {
	r, ok := catalog[id]
	if !ok || !r.available() {
		return Runtime{}, false
	}
	return r, true
}

// IDs lists the identifiers this machine can run, sorted.
func IDs() []string {
	var ids []string
	for id, r := range catalog {
		if r.available() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Interpreted lists, sorted, the runtimes this machine can run that are
// interpreted: Owl's own bootstrap on a host interpreter (Python, Node.js),
// not a function's own (provided.*).
func Interpreted() []string {
	var ids []string
	for _, id := range IDs() {
		if !catalog[id].Provided() {
			ids = append(ids, id)
		}
	}
	return ids
}

// Known reports whether id is a runtime Owl knows, available here or not.
func Known(id string) bool {
	_, ok := catalog[id]
	return ok
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// nodeMajor is the major version of /usr/bin/node ("" when absent), asked
// once: `node --version` costs ~50 ms.
var nodeMajor = sync.OnceValue(func() string {
	if !isExecutable("/usr/bin/node") {
		return ""
	}
	out, err := exec.Command("/usr/bin/node", "--version").Output()
	if err != nil {
		return ""
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, _, _ := strings.Cut(v, ".")
	return major
})
