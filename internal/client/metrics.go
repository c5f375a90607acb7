package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
)

// maxMetricsBody bounds how much of a /metrics answer is read.
const maxMetricsBody = 64 << 20

// Metrics returns the server's Prometheus metrics (GET /metrics), in the
// text exposition format. A token that may not read them gets an
// *APIError with Status 403.
func (c *Client) Metrics(ctx context.Context) ([]byte, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: "/metrics",
		header: http.Header{"Accept": {"text/plain;version=0.0.4"}}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsBody))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading the metrics of %s: %w", c.endpoint, err)
	}
	return b, nil
}
