package lambdaapi

import (
	"context"
	"net/http"
	"regexp"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// Nodes is the cluster's node registry (internal/cluster): GET
// /owl/v1/nodes lists it, POST /owl/v1/nodes/{name}/drain drains a node.
type Nodes interface {
	Nodes() []lambdawire.Node
	Drain(ctx context.Context, name string, on bool) error
}

var nodeNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// listNodes is GET /owl/v1/nodes.
func (a *API) listNodes(w http.ResponseWriter, _ *http.Request, _ []byte) error {
	if a.opts.Nodes == nil {
		return lambdaerr.New(lambdaerr.UnknownOperation, "This node does not list nodes.")
	}
	writeJSON(w, http.StatusOK, lambdawire.NodeList{Nodes: a.opts.Nodes.Nodes()})
	return nil
}

// drainNode is POST /owl/v1/nodes/{name}/drain: {"drain": true} stops
// new placements on the node (in-flight work finishes), false resumes
// them. It answers once this node sees the change.
func (a *API) drainNode(w http.ResponseWriter, r *http.Request, body []byte) error {
	if a.opts.Nodes == nil {
		return lambdaerr.New(lambdaerr.UnknownOperation, "This node does not list nodes.")
	}
	name := r.PathValue("name")
	if !nodeNameRe.MatchString(name) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Node name %q: want 1 to 64 letters, digits, - or _.", name)
	}
	in := lambdawire.DrainRequest{Drain: true}
	if len(body) > 0 {
		if err := decode(body, &in); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := a.opts.Nodes.Drain(ctx, name, in.Drain); err != nil {
		return err
	}
	for _, n := range a.opts.Nodes.Nodes() {
		if n.Name == name {
			writeJSON(w, http.StatusOK, n)
			return nil
		}
	}
	return lambdaerr.New(lambdaerr.ResourceNotFound, "Node %s left.", name)
}

// workerOnly is the API of a worker node (--role worker): it serves the
// health probe, metrics and the node list, and answers every other
// operation 404, naming where the API is.
func workerOnly(mux http.Handler) http.Handler {
	allowed := http.NewServeMux()
	allowed.Handle("/healthz", mux)
	allowed.Handle("GET /metrics", mux)
	allowed.Handle("GET /owl/v1/nodes", mux)
	allowed.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSONError(w, http.StatusNotFound, lambdaerr.UnknownOperation, map[string]any{
			"message": "This node is a worker (--role worker): it runs environments and serves only /healthz, /metrics and /owl/v1/nodes. Send API requests to an api or all node."})
	})
	return allowed
}
