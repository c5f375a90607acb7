package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/owl-project/owl/internal/lambdawire"
)

// Nodes lists the cluster's nodes (Owl's GET /owl/v1/nodes), by name.
func (c *Client) Nodes(ctx context.Context) ([]lambdawire.Node, error) {
	var out lambdawire.NodeList
	if err := c.doJSON(ctx, http.MethodGet, "/owl/v1/nodes", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Nodes, nil
}

// DrainNode stops new placements on node name (on) or resumes them, and
// returns its record once the answering node sees the change.
func (c *Client) DrainNode(ctx context.Context, name string, on bool) (lambdawire.Node, error) {
	var out lambdawire.Node
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/nodes/"+url.PathEscape(name)+"/drain", nil, lambdawire.DrainRequest{Drain: on}, nil, &out)
	return out, err
}
