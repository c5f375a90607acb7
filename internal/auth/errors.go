package auth

import (
	"errors"
	"net/http"
)

// Sentinels for errors.Is. Every error Authenticate returns is an *Error that
// wraps exactly one of them. ErrSignatureExpired is separate from
// ErrInvalidSignature although AWS reports both as InvalidSignatureException.
var (
	ErrMissingAuthenticationToken = errors.New("missing authentication token")
	ErrUnrecognizedClient         = errors.New("unrecognized client")
	ErrIncompleteSignature        = errors.New("incomplete signature")
	ErrInvalidSignature           = errors.New("invalid signature")
	ErrSignatureExpired           = errors.New("signature expired")
)

// Error is an authentication failure in AWS terms: the API server renders it
// as status HTTPStatus(), header X-Amzn-ErrorType: Code(), and Message() in the
// body. Error() adds a reason for logs; neither ever contains a secret.
type Error struct {
	kind    error
	code    string
	message string
	reason  string
}

func (e *Error) Error() string {
	if e.reason == "" {
		return e.code + ": " + e.message
	}
	return e.code + ": " + e.message + " (" + e.reason + ")"
}

// Unwrap returns the sentinel (ErrInvalidSignature, ...) this error is an instance of.
func (e *Error) Unwrap() error { return e.kind }

// Code is the AWS error type, e.g. "InvalidSignatureException".
func (e *Error) Code() string { return e.code }

// Message is the text AWS sends to the client.
func (e *Error) Message() string { return e.message }

// HTTPStatus is the status AWS answers with: 403 for every authentication failure.
func (e *Error) HTTPStatus() int { return http.StatusForbidden }

func missingToken() *Error {
	return &Error{kind: ErrMissingAuthenticationToken, code: "MissingAuthenticationTokenException",
		message: "Missing Authentication Token"}
}

func unrecognizedClient(reason string) *Error {
	return &Error{kind: ErrUnrecognizedClient, code: "UnrecognizedClientException",
		message: "The security token included in the request is invalid.", reason: reason}
}

// incomplete reports a malformed Authorization header; AWS names the problem in
// the message itself.
func incomplete(message string) *Error {
	return &Error{kind: ErrIncompleteSignature, code: "IncompleteSignatureException", message: message}
}

func invalidSignature(reason string) *Error {
	return &Error{kind: ErrInvalidSignature, code: "InvalidSignatureException",
		message: "The request signature we calculated does not match the signature you provided. " +
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
		reason: reason}
}

// badScope reports a credential scope AWS rejects with its own message.
func badScope(message string) *Error {
	return &Error{kind: ErrInvalidSignature, code: "InvalidSignatureException", message: message}
}

func expired(message string) *Error {
	return &Error{kind: ErrSignatureExpired, code: "InvalidSignatureException", message: message}
}
