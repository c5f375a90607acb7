package auth

import (
	"errors"
	"fmt"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Sentinels for errors.Is. Every error Authenticate returns is a
// *lambdaerr.Error (HTTP 403, the AWS error code and message a client
// sees) whose cause wraps exactly one of them, with the reason for logs.
// ErrSignatureExpired is separate from ErrInvalidSignature although AWS
// reports both as InvalidSignatureException. Neither the message nor the
// reason ever contains a secret.
var (
	ErrMissingAuthenticationToken = errors.New("missing authentication token")
	ErrUnrecognizedClient         = errors.New("unrecognized client")
	ErrIncompleteSignature        = errors.New("incomplete signature")
	ErrInvalidSignature           = errors.New("invalid signature")
	ErrSignatureExpired           = errors.New("signature expired")
)

func authError(kind error, code, message, reason string) *lambdaerr.Error {
	cause := kind
	if reason != "" {
		cause = fmt.Errorf("%w (%s)", kind, reason)
	}
	return &lambdaerr.Error{Code: code, Message: message, Err: cause}
}

func missingToken() *lambdaerr.Error {
	return authError(ErrMissingAuthenticationToken, lambdaerr.MissingAuthenticationToken, "Missing Authentication Token", "")
}

func unrecognizedClient(reason string) *lambdaerr.Error {
	return authError(ErrUnrecognizedClient, lambdaerr.UnrecognizedClient,
		"The security token included in the request is invalid.", reason)
}

// incomplete reports a malformed Authorization header; AWS names the problem in
// the message itself.
func incomplete(message string) *lambdaerr.Error {
	return authError(ErrIncompleteSignature, lambdaerr.IncompleteSignature, message, "")
}

func invalidSignature(reason string) *lambdaerr.Error {
	return authError(ErrInvalidSignature, lambdaerr.InvalidSignature,
		"The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
		reason)
}

// badScope reports a credential scope AWS rejects with its own message.
func badScope(message string) *lambdaerr.Error {
	return authError(ErrInvalidSignature, lambdaerr.InvalidSignature, message, "")
}

func expired(message string) *lambdaerr.Error {
	return authError(ErrSignatureExpired, lambdaerr.InvalidSignature, message, "")
}
