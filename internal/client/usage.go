package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
)

// UsageFilter selects usage.
type UsageFilter struct {
	// Function selects one function; "" all.
	Function string
	// Since and Until bound the range (usage is kept per hour: the hours
	// they fall in are included); zero: unbounded.
	Since, Until time.Time
	// By is "hour", "day" or "" (one row per function for the range).
	By string
}

// Usage returns the billed usage (Owl's GET /owl/v1/usage), ordered by
// period, then function.
func (c *Client) Usage(ctx context.Context, f UsageFilter) ([]lambdawire.UsageRow, error) {
	q := url.Values{}
	if f.Function != "" {
		q.Set("function", f.Function)
	}
	setTimeRange(q, f.Since, f.Until)
	if f.By != "" {
		q.Set("by", f.By)
	}
	var out lambdawire.UsageReport
	if err := c.doJSON(ctx, http.MethodGet, "/owl/v1/usage", q, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Usage, nil
}
