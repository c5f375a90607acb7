package client

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
)

const functionsPath = "/2015-03-31/functions"

// functionPath returns the escaped path of one function, plus an optional escaped suffix.
func functionPath(name, suffix string) string {
	return functionsPath + "/" + url.PathEscape(name) + suffix
}

// CreateFunction creates a function from an inline zip (CreateFunction, 201).
func (c *Client) CreateFunction(ctx context.Context, in *CreateFunctionInput) (*FunctionConfiguration, error) {
	body := *in
	if body.Role == "" {
		body.Role = DefaultRole
	}
	var out FunctionConfiguration
	if err := c.doJSON(ctx, http.MethodPost, functionsPath, nil, &body, in.Progress, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetFunction returns a function's configuration, code location and tags (GetFunction).
func (c *Client) GetFunction(ctx context.Context, name string) (*GetFunctionOutput, error) {
	var out GetFunctionOutput
	if err := c.doJSON(ctx, http.MethodGet, functionPath(name, ""), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateFunctionCode replaces the code of a function's $LATEST with an inline zip.
func (c *Client) UpdateFunctionCode(ctx context.Context, name string, in *UpdateFunctionCodeInput) (*FunctionConfiguration, error) {
	var out FunctionConfiguration
	if err := c.doJSON(ctx, http.MethodPut, functionPath(name, "/code"), nil, in, in.Progress, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateFunctionConfiguration changes the settings of a function's $LATEST that are set in in.
func (c *Client) UpdateFunctionConfiguration(ctx context.Context, name string, in *UpdateFunctionConfigurationInput) (*FunctionConfiguration, error) {
	var out FunctionConfiguration
	if err := c.doJSON(ctx, http.MethodPut, functionPath(name, "/configuration"), nil, in, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// listPageSize is the page size asked of ListFunctions; Lambda serves at most 50.
const listPageSize = 50

// ListFunctions returns every function, following NextMarker through all pages.
func (c *Client) ListFunctions(ctx context.Context) ([]FunctionConfiguration, error) {
	return listAll(ctx, c, functionsPath, func(p *lambdawire.FunctionList) ([]FunctionConfiguration, *string) {
		return p.Functions, p.NextMarker
	})
}

// DeleteFunction deletes a function and all its versions and aliases (DeleteFunction, 204).
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, functionPath(name, ""), nil, nil, nil, nil)
}

// Invoke runs a function with payload as its event. A function that fails is not an error of
// Invoke: the result has FunctionError set and the error object as Payload. Errors are for
// invocations the platform refused (*APIError) or that could not be sent (*ConnError).
func (c *Client) Invoke(ctx context.Context, name string, payload []byte, opts InvokeOptions) (*InvokeResult, error) {
	resp, err := c.send(ctx, invokeRequest(functionPath(name, "/invocations"), payload, opts))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnError{Endpoint: c.endpoint, Err: fmt.Errorf("reading the invoke response: %w", err)}
	}
	res := &InvokeResult{
		StatusCode:      resp.StatusCode,
		Payload:         body,
		FunctionError:   resp.Header.Get("X-Amz-Function-Error"),
		ExecutedVersion: resp.Header.Get("X-Amz-Executed-Version"),
		RequestID:       resp.Header.Get("X-Amzn-Requestid"),
	}
	if lr := resp.Header.Get("X-Amz-Log-Result"); lr != "" {
		if dec, err := base64.StdEncoding.DecodeString(lr); err == nil {
			res.LogResult = string(dec)
		} else {
			// The function ran; losing its result over a malformed log header would be worse.
			res.LogResult = lr
		}
	}
	return res, nil
}

// invokeRequest is the POST of an invocation (Invoke, InvokeStream) to
// path, with opts' headers and qualifier.
func invokeRequest(path string, payload []byte, opts InvokeOptions) request {
	h := http.Header{}
	if opts.InvocationType != "" {
		h.Set("X-Amz-Invocation-Type", opts.InvocationType)
	}
	if opts.LogTail {
		h.Set("X-Amz-Log-Type", "Tail")
	}
	var q url.Values
	if opts.Qualifier != "" {
		q = url.Values{"Qualifier": {opts.Qualifier}}
	}
	if payload == nil {
		payload = []byte{}
	}
	return request{method: http.MethodPost, path: path, query: q, header: h, body: payload}
}

// LogFilter selects log lines (Owl's GET /owl/v1/functions/NAME/logs).
type LogFilter struct {
	// Limit is how many of the most recent lines; <= 0 leaves it to the
	// server. Following ignores it.
	Limit int
	// Since and Until bound the lines' times; zero: unbounded.
	Since, Until time.Time
	// RequestID selects one invocation's lines.
	RequestID string
	// Qualifier selects a version's lines ($LATEST, a number, or an
	// alias: the versions it routes to).
	Qualifier string
	// JSON asks for one lambdawire.LogLine object per line instead of text.
	JSON bool
}

func (f LogFilter) query() url.Values {
	q := url.Values{}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	setTimeRange(q, f.Since, f.Until)
	if f.RequestID != "" {
		q.Set("request", f.RequestID)
	}
	if f.Qualifier != "" {
		q.Set("Qualifier", f.Qualifier)
	}
	if f.JSON {
		q.Set("format", "json")
	}
	return q
}

// Logs returns the most recent log lines of a function that f selects, oldest first: the
// platform's START/END/REPORT lines and the function's own output, as text or (f.JSON) one JSON
// object per line.
func (c *Client) Logs(ctx context.Context, name string, f LogFilter) (string, error) {
	resp, err := c.send(ctx, request{
		method: http.MethodGet,
		path:   "/owl/v1/functions/" + url.PathEscape(name) + "/logs",
		query:  f.query(),
	})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &ConnError{Endpoint: c.endpoint, Err: fmt.Errorf("reading logs: %w", err)}
	}
	return string(b), nil
}

// Runtime is one runtime the server can run.
type Runtime = lambdawire.Runtime

// Runtimes lists the runtimes the server can run (Owl's /owl/v1/runtimes).
func (c *Client) Runtimes(ctx context.Context) ([]Runtime, error) {
	var out lambdawire.RuntimeList
	if err := c.doJSON(ctx, http.MethodGet, "/owl/v1/runtimes", nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Runtimes, nil
}

// FollowLogs writes the recent log lines of a function that f selects to out, then each new
// line as the function writes it, until ctx ends or the server ends the stream (the function
// deleted, the server stopping: its last line says).
func (c *Client) FollowLogs(ctx context.Context, name string, f LogFilter, out io.Writer) error {
	q := f.query()
	q.Set("follow", "true")
	resp, err := c.send(ctx, request{
		method: http.MethodGet,
		path:   "/owl/v1/functions/" + url.PathEscape(name) + "/logs",
		query:  q,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(out, resp.Body)
	if ctx.Err() != nil {
		return nil // interrupted: the usual end
	}
	if err != nil {
		return &ConnError{Endpoint: c.endpoint, Err: fmt.Errorf("following logs: %w", err)}
	}
	return nil
}
