// Package client is the Go client of Owl's HTTP API: the Lambda-compatible management and invoke
// operations (the AWS paths and JSON shapes of API version 2015-03-31) and Owl's /owl/v1
// extensions. The owl CLI is built on it; any Go program may use it.
//
// A Client is configured with an endpoint and a bearer token, either explicitly with New or from
// the environment with FromEnv (OWL_ENDPOINT, OWL_TOKEN, and the credentials file that `owl
// serve` writes into its data dir). Errors answered by the server are *APIError; failures to talk
// to the server at all are *ConnError, whose message says whether Owl looks down.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// DefaultEndpoint is where `owl serve` listens unless configured otherwise.
const DefaultEndpoint = "http://127.0.0.1:8790"

// Environment variables read by FromEnv.
const (
	EnvEndpoint = "OWL_ENDPOINT" // API endpoint; DefaultEndpoint when unset
	EnvToken    = "OWL_TOKEN"    // bearer token; the credentials file when unset
	EnvDataDir  = "OWL_DATA"     // data dir of `owl serve`; $HOME/.owl when unset
)

// CredentialsFile is the name of the credentials file inside the data dir.
const CredentialsFile = "credentials.json"

// Client talks to one Owl endpoint. It is safe for concurrent use.
type Client struct {
	endpoint  string // scheme://host[:port][/prefix], without a trailing slash
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of a default http.Client.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(c *Client) { c.userAgent = ua }
}

// New returns a Client for endpoint (DefaultEndpoint when empty; "host:port" means
// "http://host:port") that authenticates with token.
func New(endpoint, token string, opts ...Option) *Client {
	c := &Client{
		endpoint:  normalizeEndpoint(endpoint),
		token:     token,
		http:      &http.Client{}, // no overall timeout: a synchronous invoke may run 15 minutes
		userAgent: "owl-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// FromEnv returns a Client for EndpointFromEnv() authenticated with TokenFromEnv().
func FromEnv(opts ...Option) (*Client, error) {
	token, err := TokenFromEnv()
	if err != nil {
		return nil, err
	}
	return New(EndpointFromEnv(), token, opts...), nil
}

// Endpoint returns the endpoint the Client sends requests to.
func (c *Client) Endpoint() string { return c.endpoint }

func normalizeEndpoint(e string) string {
	e = strings.TrimSpace(e)
	if e == "" {
		return DefaultEndpoint
	}
	if !strings.Contains(e, "://") {
		e = "http://" + e
	}
	return strings.TrimRight(e, "/")
}

// EndpointFromEnv returns $OWL_ENDPOINT, or DefaultEndpoint when it is unset or empty.
func EndpointFromEnv() string {
	if e := os.Getenv(EnvEndpoint); e != "" {
		return normalizeEndpoint(e)
	}
	return DefaultEndpoint
}

// DataDir returns the data dir of `owl serve` on this machine: $OWL_DATA, else $HOME/.owl.
func DataDir() (string, error) {
	if d := os.Getenv(EnvDataDir); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the Owl data dir: set %s (%w)", EnvDataDir, err)
	}
	return filepath.Join(home, ".owl"), nil
}

// Credentials is the content of the credentials file that `owl serve` writes into its data dir.
type Credentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	Token           string `json:"token"`
}

// ReadCredentials reads a credentials file.
func ReadCredentials(path string) (*Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cr Credentials
	if err := json.Unmarshal(b, &cr); err != nil {
		return nil, fmt.Errorf("reading Owl credentials %s: %w", path, err)
	}
	return &cr, nil
}

// ErrNoToken is wrapped by the error of TokenFromEnv when no token can be found.
var ErrNoToken = errors.New("no Owl token")

// TokenFromEnv returns $OWL_TOKEN, or else the token in <DataDir()>/credentials.json. The error
// wraps ErrNoToken when neither exists and says where it looked.
func TokenFromEnv() (string, error) {
	if t := strings.TrimSpace(os.Getenv(EnvToken)); t != "" {
		return t, nil
	}
	dir, err := DataDir()
	if err != nil {
		return "", fmt.Errorf("%w: set %s or %s (%v)", ErrNoToken, EnvToken, EnvDataDir, err)
	}
	path := filepath.Join(dir, CredentialsFile)
	cr, err := ReadCredentials(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%w: set %s or run `owl serve` on this machine (looked in %s)", ErrNoToken, EnvToken, path)
	case err != nil:
		return "", err
	case strings.TrimSpace(cr.Token) == "":
		return "", fmt.Errorf("%w: set %s (%s has no token)", ErrNoToken, EnvToken, path)
	}
	return strings.TrimSpace(cr.Token), nil
}

// APIError is an error answered by the server: a non-2xx status with a Lambda error code (the
// X-Amzn-ErrorType header, e.g. ResourceNotFoundException) and a message.
type APIError struct {
	Status    int    // HTTP status
	Code      string // Lambda error type; empty if the server sent none
	Message   string
	RequestID string // x-amzn-RequestId, if sent
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("HTTP %d", e.Status)
	}
	if e.Message == "" {
		return code
	}
	return code + ": " + e.Message
}

// Lambda error codes the client's callers commonly act on.
const (
	CodeResourceNotFound      = "ResourceNotFoundException"
	CodeResourceConflict      = "ResourceConflictException"
	CodeInvalidParameterValue = "InvalidParameterValueException"
	CodeTooManyRequests       = "TooManyRequestsException"
)

// IsCode reports whether err is (or wraps) an *APIError with the given code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// ConnError is a failure to exchange a request with the server at all: refused connection,
// unknown host, connection reset, TLS failure. Err is the underlying network error.
type ConnError struct {
	Endpoint string
	Err      error
}

func (e *ConnError) Error() string {
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Op == "dial" {
		return fmt.Sprintf("cannot reach Owl at %s: is `owl serve` running? (%v)", e.Endpoint, e.Err)
	}
	return fmt.Sprintf("talking to Owl at %s: %v", e.Endpoint, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// request is one HTTP exchange with the API.
type request struct {
	method   string
	path     string // escaped path, starting with "/"
	query    url.Values
	header   http.Header
	body     []byte
	progress ProgressFunc
}

// send performs r and returns the response when its status is 2xx; the caller closes the body.
// Any other status becomes an *APIError, and transport failures a *ConnError (or the context's
// error when ctx ended).
func (c *Client) send(ctx context.Context, r request) (*http.Response, error) {
	u := c.endpoint + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.progress != nil {
			body = &progressReader{r: body, total: int64(len(r.body)), fn: r.progress}
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("bad Owl endpoint %q: %w", c.endpoint, err)
	}
	if r.body != nil {
		// An explicit length keeps the upload un-chunked even behind the progress reader.
		req.ContentLength = int64(len(r.body))
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &ConnError{Endpoint: c.endpoint, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, parseAPIError(resp)
	}
	return resp, nil
}

// doJSON sends in (if not nil) as JSON and decodes a JSON response into out (if not nil).
func (c *Client) doJSON(ctx context.Context, method, path string, query url.Values, in any, progress ProgressFunc, out any) error {
	r := request{method: method, path: path, query: query, progress: progress}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		r.body = b
		r.header = http.Header{"Content-Type": {"application/json"}}
	}
	resp, err := c.send(ctx, r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("decoding the response of %s %s: %w", method, path, err)
	}
	return nil
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

func parseAPIError(resp *http.Response) *APIError {
	e := &APIError{
		Status:    resp.StatusCode,
		Code:      resp.Header.Get("X-Amzn-ErrorType"),
		RequestID: resp.Header.Get("X-Amzn-Requestid"),
	}
	// AWS may append a namespace URL: "ResourceNotFoundException:http://internal.amazon.com/...".
	if i := strings.IndexByte(e.Code, ':'); i >= 0 {
		e.Code = e.Code[:i]
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var body struct {
		// encoding/json matches keys case-insensitively, so this takes "message" and "Message".
		Message string `json:"message"`
		Type    string `json:"__type"`
	}
	if err := json.Unmarshal(raw, &body); err == nil {
		e.Message = body.Message
		if e.Code == "" && body.Type != "" {
			e.Code = body.Type[strings.LastIndexByte(body.Type, '#')+1:]
		}
	} else {
		e.Message = firstLine(string(raw), 200)
	}
	if e.Message == "" && e.Code == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

func firstLine(s string, max int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// progressReader reports how much of a request body the transport has read.
type progressReader struct {
	r     io.Reader
	sent  int64
	total int64
	fn    ProgressFunc
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.sent += int64(n)
		p.fn(p.sent, p.total)
	}
	return n, err
}
