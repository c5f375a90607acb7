package registry

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/runtimes"
)

// Latest is the mutable version every function has.
const Latest = "$LATEST"

// Function is one function's $LATEST configuration, or one published
// version of it, as stored in the functions bucket. Code lives in the object store under CodeSha256Hex.
type Function struct {
	Name             string            `json:"name"`
	Runtime          string            `json:"runtime"`
	Handler          string            `json:"handler"`
	Role             string            `json:"role"`
	Description      string            `json:"description"`
	MemorySize       int               `json:"memory_size"`
	Timeout          int               `json:"timeout"`
	EphemeralStorage int               `json:"ephemeral_storage"`
	Environment      map[string]string `json:"environment,omitempty"`
	Architectures    []string          `json:"architectures"`
	PackageType      string            `json:"package_type"`
	Tags             map[string]string `json:"tags,omitempty"`
	// Network is Owl's network mode of the function's sandboxes:
	// NetworkEgress or NetworkNone; "" (functions stored before it
	// existed) means the server's default.
	Network string `json:"network,omitempty"`
	// DeadLetterTarget is where the payload of an asynchronous invocation
	// that was given up goes (DeadLetterConfig.TargetArn): a function's ARN
	// or arn:owl:nats:::<subject>, checked like an event invoke config's
	// destinations (Registry.CheckDestination); "" for none.
	DeadLetterTarget string `json:"dead_letter_target,omitempty"`
	// Logging is the function's LoggingConfig (logging.go); the zero
	// value, Text, is left out of the stored record.
	Logging Logging `json:"logging,omitzero"`
	// Image is the container image of a function of PackageType Image
	// (image.go); nil for a zip.
	Image *ImageCode `json:"image,omitempty"`
	// State and LastUpdateStatus, with their reasons, are Lambda's; ""
	// means Active and Successful. Only image functions pass through
	// Pending / InProgress while their image is pulled.
	State                      string `json:"state,omitempty"`
	StateReason                string `json:"state_reason,omitempty"`
	StateReasonCode            string `json:"state_reason_code,omitempty"`
	LastUpdateStatus           string `json:"last_update_status,omitempty"`
	LastUpdateStatusReason     string `json:"last_update_status_reason,omitempty"`
	LastUpdateStatusReasonCode string `json:"last_update_status_reason_code,omitempty"`
	// Layers are resolved when configured: layer versions are immutable,
	// and a function keeps a layer version deleted after it was attached.
	Layers        []FunctionLayer `json:"layers,omitempty"`
	CodeSha256Hex string          `json:"code_sha256"`
	CodeSize      int64           `json:"code_size"`
	LastModified  time.Time       `json:"last_modified"`
	RevisionID    string          `json:"revision_id"`
	// Version is Latest, or the number of a published version.
	Version string `json:"version"`
	// LastVersion (on $LATEST) is the highest version number ever
	// published; numbers are never reused.
	LastVersion int `json:"last_version,omitempty"`
	// Fingerprint (on a published version) digests what it froze; see
	// fingerprint.
	Fingerprint string `json:"fingerprint,omitempty"`
	// ReservedConcurrency (on $LATEST; it applies to every version) is the
	// function's reserved share of the account's concurrency: at most this
	// many invocations at once, and never fewer available. nil: none.
	ReservedConcurrency *int `json:"reserved_concurrency,omitempty"`
	// RecursiveLoop (on $LATEST; it applies to every version) is
	// RecursionAllow when a chain of events may come back to the function
	// past MaxChainDepth hops; "" stops it there (Lambda's Terminate).
	RecursiveLoop string `json:"recursive_loop,omitempty"`
}

// Network modes of a function (Owl's extension field Network).
const (
	// NetworkEgress: the sandbox reaches the host's networks (not the host,
	// not other sandboxes), like Lambda functions reach the internet.
	NetworkEgress = "egress"
	// NetworkNone: loopback and the Runtime API only.
	NetworkNone = "none"
)

// CheckNetwork validates a requested network mode; a server with egress
// disabled accepts only NetworkNone.
func CheckNetwork(v string, egressEnabled bool) error {
	switch {
	case v != NetworkEgress && v != NetworkNone:
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Value %s at 'network' failed to satisfy constraint: Member must satisfy enum value set: [%s, %s]", v, NetworkEgress, NetworkNone)
	case v == NetworkEgress && !egressEnabled:
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Network %s is disabled on this Owl server (OWL_NETWORK_EGRESS=false); the only allowed value is %s.", NetworkEgress, NetworkNone)
	}
	return nil
}

// FunctionLayer is one layer version a function uses, in /opt order.
type FunctionLayer struct {
	ARN           string `json:"arn"`
	CodeSha256Hex string `json:"code_sha256"`
	CodeSize      int64  `json:"code_size"`
}

// Limits Owl enforces on a function's configuration (Lambda's numbers).
const (
	MinMemory, MaxMemory   = 128, 10240
	MinTimeout, MaxTimeout = 1, 900
	MinTmp, MaxTmp         = 512, 10240
	MaxEnvBytes            = 4096
	MaxNameLen             = 64
	MaxDescriptionLen      = 256
	MaxLayers              = 5
)

var (
	nameRe   = regexp.MustCompile(`^[a-zA-Z0-9-_]+$`)
	envKeyRe = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
	// reservedEnv are variables the platform sets; Lambda refuses them too.
	reservedEnv = []string{"_HANDLER", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV",
		"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
		"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
		"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"}
)

// ValidateName checks a bare function name.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen || !nameRe.MatchString(name) {
		return badName(name)
	}
	return nil
}

func badName(v string) error {
	return lambdaerr.ValidationFailed(v, "functionName",
		`Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?`)
}

// Validate checks every configurable field of f, returning Lambda's error
// for the first problem.
func (f *Function) Validate() error {
	if err := ValidateName(f.Name); err != nil {
		return err
	}
	if f.PackageType == PackageImage {
		if err := f.validateImage(); err != nil {
			return err
		}
	} else if err := f.validateZipRuntime(); err != nil {
		return err
	}
	if err := lambdaerr.IntRange(f.MemorySize, "memorySize", MinMemory, MaxMemory); err != nil {
		return err
	}
	return f.validateRest()
}

// validateImage checks what an image function may not have: a runtime, a
// handler, layers (as Lambda).
func (f *Function) validateImage() error {
	if f.Image == nil {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "A function of PackageType Image needs Code.ImageUri.")
	}
	if f.Runtime != "" || f.Handler != "" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Runtime and Handler are not supported for functions of PackageType Image: the image's ENTRYPOINT and CMD (or ImageConfig) say what runs.")
	}
	if len(f.Layers) > 0 {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Layers are not supported for functions of PackageType Image: build them into the image.")
	}
	return f.Image.Overrides.validate()
}

// validateZipRuntime checks a zip function's runtime and handler.
func (f *Function) validateZipRuntime() error {
	if f.Image != nil {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "A function of PackageType Zip cannot have an ImageUri or ImageConfig.")
	}
	if _, ok := runtimes.Lookup(f.Runtime); !ok {
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Value %s at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [%s] or be a valid ARN",
			f.Runtime, strings.Join(runtimes.IDs(), ", "))
	}
	if f.Handler == "" || len(f.Handler) > 128 || strings.ContainsAny(f.Handler, " \t\r\n") {
		return lambdaerr.ValidationFailed(f.Handler, "handler", "Member must satisfy regular expression pattern: [^\\s]+")
	}
	return nil
}

// validateRest checks the fields every package type has.
func (f *Function) validateRest() error {
	if err := lambdaerr.IntRange(f.Timeout, "timeout", MinTimeout, MaxTimeout); err != nil {
		return err
	}
	if err := lambdaerr.IntRange(f.EphemeralStorage, "ephemeralStorage.size", MinTmp, MaxTmp); err != nil {
		return err
	}
	if utf8.RuneCountInString(f.Description) > MaxDescriptionLen {
		return lambdaerr.ValidationFailed(f.Description, "description", "Member must have length less than or equal to 256")
	}
	if f.Network != "" {
		if err := CheckNetwork(f.Network, true); err != nil {
			return err
		}
	}
	if err := f.Logging.validate(); err != nil {
		return err
	}
	if len(f.Layers) > MaxLayers {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Cannot reference more than %d layers.", MaxLayers)
	}
	return validateEnv(f.Environment)
}

func validateEnv(env map[string]string) error {
	size := 0
	for k, v := range env {
		if !envKeyRe.MatchString(k) {
			return lambdaerr.ValidationFailed(k, "environment.variables", "Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+")
		}
		for _, r := range reservedEnv {
			if k == r {
				return lambdaerr.New(lambdaerr.InvalidParameterValue,
					"Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s", k)
			}
		}
		size += len(k) + len(v)
	}
	if size > MaxEnvBytes {
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %d bytes", size)
	}
	return nil
}

// ARN returns the function's ARN, with a qualifier when q is not empty.
func ARN(region, account, name, q string) string {
	arn := fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, account, name)
	if q != "" {
		arn += ":" + q
	}
	return arn
}

// ParseName splits the FunctionName forms Lambda accepts — name,
// name:qualifier, full ARN and partial ARN (account:function:name), each
// optionally qualified — into name and qualifier.
func ParseName(s string) (name, qualifier string, err error) {
	orig := s
	if strings.HasPrefix(s, "arn:") {
		parts := strings.Split(s, ":")
		// arn:aws:lambda:region:account:function:name[:qualifier]
		if len(parts) < 7 || len(parts) > 8 || parts[2] != "lambda" || parts[5] != "function" {
			return "", "", badName(orig)
		}
		name = parts[6]
		if len(parts) == 8 {
			qualifier = parts[7]
		}
	} else if !strings.Contains(s, ":") {
		// A plain name, as nearly every invocation gives it: no split (an
		// allocation per invocation).
		name = s
	} else {
		parts := strings.Split(s, ":")
		switch {
		case len(parts) == 1:
			name = parts[0]
		case len(parts) == 2:
			name, qualifier = parts[0], parts[1]
		case (len(parts) == 3 || len(parts) == 4) && parts[1] == "function":
			name = parts[2]
			if len(parts) == 4 {
				qualifier = parts[3]
			}
		default:
			return "", "", badName(orig)
		}
	}
	if ValidateName(name) != nil {
		return "", "", badName(orig)
	}
	if qualifier != "" && qualifier != Latest && !nameRe.MatchString(qualifier) {
		return "", "", lambdaerr.ValidationFailed(orig, "qualifier", "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)")
	}
	return name, qualifier, nil
}
