package client

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/owl-project/owl/internal/lambdawire"
)

// StreamResult is how an InvokeStream ended: InvokeComplete's fields, and
// the answer's headers.
type StreamResult struct {
	// ErrorCode is the function error's type (or a platform error's code
	// after the first byte); empty on success. ErrorDetails is its message.
	ErrorCode, ErrorDetails string
	// LogResult is the tail of the log (LogTail), base64-decoded.
	LogResult       string
	ExecutedVersion string // X-Amz-Executed-Version
	RequestID       string // x-amzn-RequestId
}

// InvokeStream invokes name with InvokeWithResponseStream and hands each
// chunk of the response to chunk as it arrives; an error from chunk stops
// reading (the server then ends the invocation). Only opts.LogTail and
// opts.Qualifier apply. A refusal before the first byte is an *APIError,
// as from Invoke.
func (c *Client) InvokeStream(ctx context.Context, name string, payload []byte, opts InvokeOptions, chunk func([]byte) error) (*StreamResult, error) {
	opts.InvocationType = ""
	resp, err := c.send(ctx, invokeRequest("/2021-11-15/functions/"+url.PathEscape(name)+"/response-streaming-invocations", payload, opts))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	res := &StreamResult{ExecutedVersion: resp.Header.Get("X-Amz-Executed-Version"), RequestID: resp.Header.Get("X-Amzn-Requestid")}
	br := bufio.NewReader(resp.Body)
	for {
		ev, err := lambdawire.ReadEvent(br)
		switch {
		case errors.Is(err, io.EOF):
			return nil, &ConnError{Endpoint: c.endpoint, Err: errors.New("the response stream ended without InvokeComplete")}
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, &ConnError{Endpoint: c.endpoint, Err: fmt.Errorf("reading the response stream: %w", err)}
		}
		switch ev.EventType {
		case "PayloadChunk":
			if err := chunk(ev.Payload); err != nil {
				return nil, err
			}
		case "InvokeComplete":
			var done lambdawire.InvokeComplete
			if err := json.Unmarshal(ev.Payload, &done); err != nil {
				return nil, &ConnError{Endpoint: c.endpoint, Err: fmt.Errorf("decoding InvokeComplete: %w", err)}
			}
			res.ErrorCode, res.ErrorDetails = done.ErrorCode, done.ErrorDetails
			if dec, err := base64.StdEncoding.DecodeString(done.LogResult); err == nil {
				res.LogResult = string(dec)
			} else {
				res.LogResult = done.LogResult
			}
			return res, nil
		}
	}
}
