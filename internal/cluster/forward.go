package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// Request is one invocation as it goes to the node that runs it: what
// lambdaapi.InvokeRequest carries but the response stream.
type Request struct {
	// Function is the configuration to run, resolved by the node that
	// took the request: the runner fetches its code from the shared
	// object store if it has not yet.
	Function      registry.Function `json:"function"`
	RequestID     string            `json:"request_id"`
	ClientContext string            `json:"client_context,omitempty"`
	TraceID       string            `json:"trace_id,omitempty"`
	InvokedARN    string            `json:"invoked_arn,omitempty"`
	Depth         int               `json:"depth,omitempty"`
	Origin        string            `json:"origin,omitempty"`
	// Payload travels after the JSON, as it is (frame).
	Payload []byte `json:"-"`
}

// Result is an invocation's outcome as it comes back.
type Result struct {
	FunctionError bool   `json:"function_error,omitempty"`
	ErrorType     string `json:"error_type,omitempty"`
	// Log is the tail of its log (the last LogTailBytes): what Invoke's
	// LogType Tail returns; the whole log is in the shared log stream.
	Log string `json:"log,omitempty"`
	// Err is a platform or admission error instead of an outcome.
	Err     *wireError `json:"error,omitempty"`
	Payload []byte     `json:"-"`
}

// LogTailBytes is how much of an invocation's log comes back with its
// result: Lambda's LogType Tail is the last 4 KB.
const LogTailBytes = 4096

// wireError is a lambdaerr.Error between nodes.
type wireError struct {
	Code       string `json:"code"`
	Message    string `json:"message"`
	Reason     string `json:"reason,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

func toWire(err error) *wireError {
	e := lambdaerr.As(err)
	return &wireError{Code: e.Code, Message: e.Message, Reason: e.Reason, RetryAfter: e.RetryAfter}
}

func (w *wireError) err() error {
	return &lambdaerr.Error{Code: w.Code, Message: w.Message, Reason: w.Reason, RetryAfter: w.RetryAfter}
}

// frame is a message between nodes: the length of head's JSON (4 bytes,
// big-endian), the JSON, then the payload as it is, so that a 6 MB
// payload is not base64'd.
func frame(head any, payload []byte) ([]byte, error) {
	h, err := json.Marshal(head)
	if err != nil {
		return nil, fmt.Errorf("encoding a forwarded invocation: %w", err)
	}
	out := make([]byte, 4, 4+len(h)+len(payload))
	binary.BigEndian.PutUint32(out, uint32(len(h)))
	return append(append(out, h...), payload...), nil
}

// unframe reads frame's message into head and returns its payload.
func unframe(b []byte, head any) ([]byte, error) {
	if len(b) < 4 {
		return nil, errors.New("a forwarded invocation: short message")
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(b)-4 {
		return nil, errors.New("a forwarded invocation: truncated message")
	}
	if err := json.Unmarshal(b[4:4+n], head); err != nil {
		return nil, fmt.Errorf("a forwarded invocation: %w", err)
	}
	return b[4+n:], nil
}
