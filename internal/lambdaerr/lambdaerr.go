// Package lambdaerr is Owl's vocabulary of Lambda service errors: the error
// type names real AWS clients recognise, their HTTP statuses, and one error
// value any layer (registry, router, API) can return. The API renders them in
// one place (internal/lambdaapi).
package lambdaerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Codes Owl answers with. The HTTP status of each is in Status.
const (
	ResourceNotFound          = "ResourceNotFoundException"
	ResourceConflict          = "ResourceConflictException"
	InvalidParameterValue     = "InvalidParameterValueException"
	InvalidRequestContent     = "InvalidRequestContentException"
	RequestTooLarge           = "RequestTooLargeException"
	RequestEntityTooLarge     = "RequestEntityTooLargeException"
	Validation                = "ValidationException"
	PreconditionFailed        = "PreconditionFailedException"
	TooManyRequests           = "TooManyRequestsException"
	CodeStorageExceeded       = "CodeStorageExceededException"
	Service                   = "ServiceException"
	UnknownOperation          = "UnknownOperationException"
	ProvisionedConfigNotFound = "ProvisionedConcurrencyConfigNotFoundException"
	// RecursiveInvocation is a call a function made that would take a
	// chain of calls and events past its depth limit.
	RecursiveInvocation = "RecursiveInvocationException"
	// AccessDenied is an operation the caller's credentials may not do
	// (a function's own credentials only invoke and publish).
	AccessDenied = "AccessDeniedException"
	// ServiceUnavailable is Owl's own: the node cannot take a write now
	// (its data directory is below the disk reserve) but will once space
	// is freed. 503 with Retry-After, so SDKs retry it later.
	ServiceUnavailable = "ServiceUnavailableException"

	// Authentication failures (internal/auth), all 403. AWS's body for
	// them is {"message": ...} alone: IsAuthentication tells them apart.
	MissingAuthenticationToken = "MissingAuthenticationTokenException"
	UnrecognizedClient         = "UnrecognizedClientException"
	IncompleteSignature        = "IncompleteSignatureException"
	InvalidSignature           = "InvalidSignatureException"
)

var statuses = map[string]int{
	ResourceNotFound:          404,
	ResourceConflict:          409,
	InvalidParameterValue:     400,
	InvalidRequestContent:     400,
	RequestTooLarge:           413,
	RequestEntityTooLarge:     413,
	Validation:                400,
	PreconditionFailed:        412,
	TooManyRequests:           429,
	CodeStorageExceeded:       400,
	Service:                   500,
	UnknownOperation:          404,
	ProvisionedConfigNotFound: 404,
	RecursiveInvocation:       400,
	AccessDenied:              403,
	ServiceUnavailable:        503,

	MissingAuthenticationToken: 403,
	UnrecognizedClient:         403,
	IncompleteSignature:        403,
	InvalidSignature:           403,
}

// IsAuthentication reports whether code is an authentication failure's.
func IsAuthentication(code string) bool {
	switch code {
	case MissingAuthenticationToken, UnrecognizedClient, IncompleteSignature, InvalidSignature:
		return true
	}
	return false
}

// Function error types: the errorType of a failed invocation's payload
// (answered 200 with X-Amz-Function-Error: Unhandled), as Lambda names
// them. A runtime may report types of its own; these are the ones Owl
// reports itself.
const (
	// FunctionUnhandled is a runtime's /error post that names no type.
	FunctionUnhandled = "Unhandled"
	// FunctionResponseSizeTooLarge is a result above the response limit.
	FunctionResponseSizeTooLarge = "Function.ResponseSizeTooLarge"
	// RuntimeUnknown is an /init/error post that names no type.
	RuntimeUnknown = "Runtime.Unknown"
	// RuntimeExitError is a runtime process that exited (or was killed,
	// as on an out-of-memory) before it answered.
	RuntimeExitError = "Runtime.ExitError"
	// RuntimeInvalidEntrypoint is a runtime that could not be started.
	RuntimeInvalidEntrypoint = "Runtime.InvalidEntrypoint"
	// RuntimeInvalidWorkingDirectory is an image function whose working
	// directory (WORKDIR or ImageConfig's) does not exist in the image.
	RuntimeInvalidWorkingDirectory = "Runtime.InvalidWorkingDirectory"
	// SandboxTimedout is an invocation (or init) past its timeout.
	SandboxTimedout = "Sandbox.Timedout"
	// ExtensionInitError is an extension that posted /extension/init/error.
	ExtensionInitError = "Extension.InitError"
	// ExtensionExitError is an extension that posted /extension/exit/error.
	ExtensionExitError = "Extension.ExitError"
	// ExtensionCrash is an extension that went away without being shut
	// down.
	ExtensionCrash = "Extension.Crash"
)

// ErrorBody is the payload of a function error Owl reports:
// Lambda's {"errorType": ..., "errorMessage": ...}.
func ErrorBody(errorType, message string) []byte {
	b, _ := json.Marshal(struct { // two strings: cannot fail
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}{message, errorType})
	return b
}

// Error is a Lambda service error.
type Error struct {
	Code    string
	Message string
	// Reason is set for throttles (TooManyRequestsException's Reason field).
	Reason string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
	// Err is an underlying cause, kept for logs; never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Status is the HTTP status of e's code (500 for unknown codes).
func (e *Error) Status() int {
	if s, ok := statuses[e.Code]; ok {
		return s
	}
	return 500
}

// New returns an error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a message and an underlying cause.
func Wrap(code string, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Err: cause}
}

// As returns err as a *Error, or a ServiceException wrapping it.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Service, Message: "An internal error occurred.", Err: err}
}

// Is reports whether err is a Lambda error with the given code.
func Is(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// ValidationFailed is the shape of Lambda's ValidationException for one
// constraint, e.g. ValidationFailed("3000", "timeout", "Member must have value less than or equal to 900").
func ValidationFailed(value, field, constraint string) *Error {
	return New(Validation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: %s", value, field, constraint)
}

// IntRange checks lo <= v <= hi with Lambda's validation message.
func IntRange(v int, field string, lo, hi int) error {
	if v < lo {
		return ValidationFailed(strconv.Itoa(v), field, "Member must have value greater than or equal to "+strconv.Itoa(lo))
	}
	if v > hi {
		return ValidationFailed(strconv.Itoa(v), field, "Member must have value less than or equal to "+strconv.Itoa(hi))
	}
	return nil
}
