// Package lambdawire holds the JSON shapes of the Lambda API (2015-03-31)
// that both ends use: the server (lambdaapi) renders them and the client
// (client) decodes them, so the two cannot drift apart. Field names are
// the wire names. A field the server always sends has no omitempty; a
// field only some responses carry has. Owl's own extensions (fields such
// as Network, operations under /owl/v1) are here too, marked as such; so is
// the one binary framing both ends speak, InvokeWithResponseStream's event
// stream (eventstream.go). It imports nothing of Owl's.
package lambdawire

// FunctionConfiguration describes one function version, as CreateFunction,
// UpdateFunctionCode, UpdateFunctionConfiguration, GetFunction,
// GetFunctionConfiguration, PublishVersion and the list operations return
// it. The fields are in the order the server writes them.
type FunctionConfiguration struct {
	FunctionName string            `json:"FunctionName"`
	FunctionArn  string            `json:"FunctionArn"`
	Runtime      string            `json:"Runtime,omitempty"` // none for images
	Role         string            `json:"Role"`
	Handler      string            `json:"Handler,omitempty"`
	CodeSize     int64             `json:"CodeSize"`
	Description  string            `json:"Description"`
	Timeout      int               `json:"Timeout"`    // seconds
	MemorySize   int               `json:"MemorySize"` // MB
	LastModified string            `json:"LastModified"`
	CodeSha256   string            `json:"CodeSha256"` // base64 of the zip's sha256
	Version      string            `json:"Version"`
	Environment  *EnvironmentState `json:"Environment,omitempty"`
	// TracingConfig, EphemeralStorage and LoggingConfig are always sent
	// by Owl; they are pointers for other servers that leave them out.
	TracingConfig              *TracingConfig    `json:"TracingConfig,omitempty"`
	RevisionId                 string            `json:"RevisionId"`
	State                      string            `json:"State"`
	StateReason                string            `json:"StateReason,omitempty"`
	StateReasonCode            string            `json:"StateReasonCode,omitempty"`
	LastUpdateStatus           string            `json:"LastUpdateStatus"`
	LastUpdateStatusReason     string            `json:"LastUpdateStatusReason,omitempty"`
	LastUpdateStatusReasonCode string            `json:"LastUpdateStatusReasonCode,omitempty"`
	PackageType                string            `json:"PackageType"`
	Architectures              []string          `json:"Architectures"`
	EphemeralStorage           *EphemeralStorage `json:"EphemeralStorage,omitempty"`
	LoggingConfig              *LoggingConfig    `json:"LoggingConfig,omitempty"`
	Layers                     []Layer           `json:"Layers,omitempty"`
	DeadLetterConfig           *DeadLetterConfig `json:"DeadLetterConfig,omitempty"`
	// ImageConfigResponse is an image function's ImageConfig.
	ImageConfigResponse *ImageConfigResponse `json:"ImageConfigResponse,omitempty"`
	// Network is Owl's extension: "egress" or "none" (AWS SDKs ignore it).
	Network string `json:"Network,omitempty"`
}

// Function states and update statuses reported in FunctionConfiguration
// (State, LastUpdateStatus).
const (
	StatePending  = "Pending"
	StateActive   = "Active"
	StateInactive = "Inactive"
	StateFailed   = "Failed"

	UpdateInProgress = "InProgress"
	UpdateSuccessful = "Successful"
	UpdateFailed     = "Failed"
)

// Environment is a function's environment as create and update requests
// send it.
type Environment struct {
	Variables map[string]string `json:"Variables"`
}

// EnvironmentState is a function's environment as the server reports it.
type EnvironmentState struct {
	Variables map[string]string `json:"Variables"`
	Error     *EnvironmentError `json:"Error,omitempty"`
}

// EnvironmentError reports why a function's environment could not be applied.
type EnvironmentError struct {
	ErrorCode string `json:"ErrorCode,omitempty"`
	Message   string `json:"Message,omitempty"`
}

// EphemeralStorage is the size of a function's /tmp in MB.
type EphemeralStorage struct {
	Size int `json:"Size"`
}

// DeadLetterConfig is where a function's given-up asynchronous events go.
type DeadLetterConfig struct {
	TargetArn string `json:"TargetArn,omitempty"`
}

// TracingConfig is a function's tracing mode ("PassThrough" or "Active").
type TracingConfig struct {
	Mode string `json:"Mode,omitempty"`
}

// LoggingConfig is where and how a function's logs are written.
type LoggingConfig struct {
	LogFormat           string `json:"LogFormat,omitempty"`
	ApplicationLogLevel string `json:"ApplicationLogLevel,omitempty"`
	SystemLogLevel      string `json:"SystemLogLevel,omitempty"`
	LogGroup            string `json:"LogGroup,omitempty"`
}

// Layer is a layer version a function uses.
type Layer struct {
	Arn      string `json:"Arn"`
	CodeSize int64  `json:"CodeSize"`
}

// AliasConfiguration is an alias, as the alias operations return it.
type AliasConfiguration struct {
	AliasArn        string         `json:"AliasArn"`
	Name            string         `json:"Name"`
	FunctionVersion string         `json:"FunctionVersion"`
	Description     string         `json:"Description"`
	RoutingConfig   *RoutingConfig `json:"RoutingConfig,omitempty"`
	RevisionId      string         `json:"RevisionId"`
}

// RoutingConfig sends a share of an alias's invocations to another version.
type RoutingConfig struct {
	// AdditionalVersionWeights maps a published version to its share (0.0–1.0).
	AdditionalVersionWeights map[string]float64 `json:"AdditionalVersionWeights"`
}

// FunctionEventInvokeConfig is a function's (qualifier's) asynchronous
// invocation configuration, as the event invoke config operations
// (2019-09-25) return it and Put and Update send it (without FunctionArn
// and LastModified). Settings not set are left out, as Lambda does;
// DestinationConfig is always sent, with an empty object for a missing
// destination.
type FunctionEventInvokeConfig struct {
	LastModified             float64            `json:"LastModified,omitempty"` // seconds since the epoch, with a fraction
	FunctionArn              string             `json:"FunctionArn,omitempty"`  // qualified, $LATEST included
	MaximumRetryAttempts     *int               `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int               `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        *DestinationConfig `json:"DestinationConfig,omitempty"`
}

// DestinationConfig says where the outcome of an asynchronous invocation
// is sent.
type DestinationConfig struct {
	OnSuccess *OnDestination `json:"OnSuccess,omitempty"`
	OnFailure *OnDestination `json:"OnFailure,omitempty"`
}

// OnDestination is one destination: an ARN, or none when Destination is
// missing or empty.
type OnDestination struct {
	Destination *string `json:"Destination,omitempty"`
}

// FunctionEventInvokeConfigList is a page of ListFunctionEventInvokeConfigs.
type FunctionEventInvokeConfigList struct {
	FunctionEventInvokeConfigs []FunctionEventInvokeConfig `json:"FunctionEventInvokeConfigs"`
	NextMarker                 *string                     `json:"NextMarker,omitempty"`
}

// GetFunctionOutput is GetFunction's answer: the configuration of the
// version (or alias) asked for, where its code can be downloaded, its
// tags, and its reserved concurrency when one is set.
type GetFunctionOutput struct {
	Configuration FunctionConfiguration `json:"Configuration"`
	Code          *FunctionCodeLocation `json:"Code,omitempty"`
	Tags          map[string]string     `json:"Tags,omitempty"`
	Concurrency   *Concurrency          `json:"Concurrency,omitempty"`
}

// FunctionCodeLocation says where a function's deployment package can be
// downloaded.
type FunctionCodeLocation struct {
	RepositoryType string `json:"RepositoryType,omitempty"`
	Location       string `json:"Location,omitempty"`
	// ImageUri and ResolvedImageUri (by digest) are an image function's.
	ImageUri         string `json:"ImageUri,omitempty"`
	ResolvedImageUri string `json:"ResolvedImageUri,omitempty"`
}

// ImageConfig overrides an image's ENTRYPOINT, CMD and WORKDIR.
type ImageConfig struct {
	EntryPoint       []string `json:"EntryPoint,omitempty"`
	Command          []string `json:"Command,omitempty"`
	WorkingDirectory string   `json:"WorkingDirectory,omitempty"`
}

// ImageConfigResponse is how an image function's ImageConfig is reported.
type ImageConfigResponse struct {
	ImageConfig *ImageConfig `json:"ImageConfig,omitempty"`
}

// Concurrency is a function's reserved concurrency.
type Concurrency struct {
	ReservedConcurrentExecutions *int `json:"ReservedConcurrentExecutions,omitempty"`
}

// The list operations answer a page of items and, when more follow, the
// marker that asks for the next page (the Marker query parameter). Items
// is never null on the wire: an empty page is [].

// FunctionList is a page of ListFunctions.
type FunctionList struct {
	Functions  []FunctionConfiguration `json:"Functions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

// VersionList is a page of ListVersionsByFunction.
type VersionList struct {
	Versions   []FunctionConfiguration `json:"Versions"`
	NextMarker *string                 `json:"NextMarker,omitempty"`
}

// AliasList is a page of ListAliases.
type AliasList struct {
	Aliases    []AliasConfiguration `json:"Aliases"`
	NextMarker *string              `json:"NextMarker,omitempty"`
}

// Runtime is one runtime a server can run, as Owl's own GET
// /owl/v1/runtimes lists it (not a Lambda operation).
type Runtime struct {
	ID           string `json:"Id"`
	Kind         string `json:"Kind"` // "provided" or "interpreted"
	ExecutionEnv string `json:"ExecutionEnv,omitempty"`
}

// RuntimeList is the answer of GET /owl/v1/runtimes.
type RuntimeList struct {
	Runtimes []Runtime `json:"Runtimes"`
}
