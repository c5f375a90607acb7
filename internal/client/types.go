package client

import "github.com/owl-project/owl/internal/lambdawire"

// The types below mirror the JSON shapes of the AWS Lambda API (2015-03-31) as Owl serves them.
// Field names are the wire names, so the structs marshal to exactly what the server sent, minus
// fields Owl does not implement.

// The function's wire shapes are the server's own (internal/lambdawire),
// so what the server sends and what the client decodes cannot drift apart.
type (
	// FunctionConfiguration describes one function version, as returned by CreateFunction,
	// UpdateFunctionCode, UpdateFunctionConfiguration, GetFunction and ListFunctions.
	FunctionConfiguration = lambdawire.FunctionConfiguration
	// Environment is the environment of a function as sent in create and update requests.
	Environment = lambdawire.Environment
	// EnvironmentState is the environment of a function as the server reports it.
	EnvironmentState = lambdawire.EnvironmentState
	// EnvironmentError reports why a function's environment could not be applied.
	EnvironmentError = lambdawire.EnvironmentError
	// EphemeralStorage is the size of a function's /tmp in MB.
	EphemeralStorage = lambdawire.EphemeralStorage
	// TracingConfig is a function's tracing mode ("PassThrough" or "Active").
	TracingConfig = lambdawire.TracingConfig
	// LoggingConfig is where and how a function's logs are written.
	LoggingConfig = lambdawire.LoggingConfig
	// Layer is a layer version a function uses.
	Layer = lambdawire.Layer
	// GetFunctionOutput is the response of GetFunction.
	GetFunctionOutput = lambdawire.GetFunctionOutput
	// FunctionCodeLocation says where a function's deployment package can be downloaded.
	FunctionCodeLocation = lambdawire.FunctionCodeLocation
	// Concurrency is a function's reserved concurrency, when one is set.
	Concurrency = lambdawire.Concurrency
)

// Function states and update statuses reported in FunctionConfiguration
// (lambdawire's).
const (
	StatePending  = lambdawire.StatePending
	StateActive   = lambdawire.StateActive
	StateInactive = lambdawire.StateInactive
	StateFailed   = lambdawire.StateFailed

	UpdateInProgress = lambdawire.UpdateInProgress
	UpdateSuccessful = lambdawire.UpdateSuccessful
	UpdateFailed     = lambdawire.UpdateFailed
)

// DefaultRole is the execution role sent on CreateFunction when none is given. Owl accepts any
// role ARN; Lambda clients require the field.
const DefaultRole = "arn:aws:iam::000000000000:role/owl"

// CreateFunctionInput is the request of CreateFunction. Zero values are left out, so the server
// applies its defaults (128 MB, 3 s).
type CreateFunctionInput struct {
	FunctionName string       `json:"FunctionName"`
	Runtime      string       `json:"Runtime,omitempty"`
	Handler      string       `json:"Handler,omitempty"`
	Role         string       `json:"Role"` // DefaultRole when empty
	Description  string       `json:"Description,omitempty"`
	MemorySize   int          `json:"MemorySize,omitempty"`
	Timeout      int          `json:"Timeout,omitempty"`
	Environment  *Environment `json:"Environment,omitempty"`
	Code         FunctionCode `json:"Code"`
	// Network is Owl's extension: "egress" or "none"; empty means the
	// server's default.
	Network string `json:"Network,omitempty"`

	// Progress, if set, is called as the request body is sent (see ProgressFunc).
	Progress ProgressFunc `json:"-"`
}

// FunctionCode is a deployment package sent inline: a zip archive, base64-encoded on the wire.
type FunctionCode struct {
	ZipFile []byte `json:"ZipFile"`
}

// UpdateFunctionCodeInput is the request of UpdateFunctionCode.
type UpdateFunctionCodeInput struct {
	ZipFile    []byte `json:"ZipFile"`
	RevisionId string `json:"RevisionId,omitempty"`

	// Progress, if set, is called as the request body is sent (see ProgressFunc).
	Progress ProgressFunc `json:"-"`
}

// UpdateFunctionConfigurationInput is the request of UpdateFunctionConfiguration. Only the fields
// that are set are changed: zero numbers and empty strings are left out, and nil pointers too.
// A non-nil Environment replaces all variables (an empty map clears them).
type UpdateFunctionConfigurationInput struct {
	Runtime     string       `json:"Runtime,omitempty"`
	Handler     string       `json:"Handler,omitempty"`
	Description *string      `json:"Description,omitempty"`
	MemorySize  int          `json:"MemorySize,omitempty"`
	Timeout     int          `json:"Timeout,omitempty"`
	Environment *Environment `json:"Environment,omitempty"`
	RevisionId  string       `json:"RevisionId,omitempty"`
	Network     string       `json:"Network,omitempty"` // Owl's extension: "egress" or "none"
}

// ProgressFunc receives upload progress: bytes of the request body sent so far, and its total
// size. It is called from the goroutine sending the request, at least once with sent == total
// when the whole body was handed to the connection.
type ProgressFunc func(sent, total int64)

// Invocation types for InvokeOptions.InvocationType.
const (
	InvocationRequestResponse = "RequestResponse"
	InvocationEvent           = "Event"
	InvocationDryRun          = "DryRun"
)

// InvokeOptions tune one invocation.
type InvokeOptions struct {
	// LogTail asks for the tail of the invocation's log (X-Amz-Log-Type: Tail).
	LogTail bool
	// InvocationType is RequestResponse (the default when empty), Event or DryRun.
	InvocationType string
	// Qualifier selects a version or alias; empty means $LATEST.
	Qualifier string
}

// InvokeResult is the outcome of an invocation that the platform accepted. A function that
// failed is still a result: FunctionError is set and Payload holds the error object.
type InvokeResult struct {
	StatusCode      int    // 200 sync, 202 Event, 204 DryRun
	Payload         []byte // the function's response, or its error object
	FunctionError   string // X-Amz-Function-Error, e.g. "Unhandled"; empty on success
	LogResult       string // X-Amz-Log-Result, base64-decoded (raw if it was not valid base64)
	ExecutedVersion string // X-Amz-Executed-Version
	RequestID       string // x-amzn-RequestId
}
