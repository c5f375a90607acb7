package codezip

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of refusal. Every refusal is an [*Error] wrapping one of these, so
// callers test with errors.Is and render [Error.Message]. The Lambda errors
// they correspond to are noted on each.
var (
	// ErrNotZip: not a readable zip, or a corrupt, encrypted or
	// unsupported entry. 400 InvalidParameterValueException.
	ErrNotZip = errors.New("codezip: not a readable zip")
	// ErrZippedTooLarge: the zip is over Limits.MaxZipped.
	// 413 RequestEntityTooLargeException.
	ErrZippedTooLarge = errors.New("codezip: zipped size too large")
	// ErrUnzippedTooLarge: contents are over Limits.MaxUnzipped, by their
	// headers or by counting. 400 InvalidParameterValueException.
	ErrUnzippedTooLarge = errors.New("codezip: unzipped size too large")
	// ErrTooManyFiles: more entries than Limits.MaxFiles.
	// 400 InvalidParameterValueException.
	ErrTooManyFiles = errors.New("codezip: too many entries")
	// ErrUnsafePath: a name or link that escapes the root, is not a clean
	// relative path, or collides with another entry.
	// 400 InvalidParameterValueException.
	ErrUnsafePath = errors.New("codezip: unsafe entry")
)

// Error is a refusal of a code zip: the uploader's fault, not the platform's.
type Error struct {
	Kind   error  // one of the Err* sentinels
	Entry  string // the offending entry's name as stored in the zip, if any
	Detail string // what is wrong with it, e.g. "escapes the code root"
	Limit  int64  // the limit that was exceeded, for the size and count kinds
	Err    error  // underlying cause, e.g. zip.ErrFormat; for logs only
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	switch {
	case e.Entry != "":
		fmt.Fprintf(&b, ": entry %q %s", e.Entry, e.Detail)
	case e.Detail != "":
		b.WriteString(": " + e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Unwrap exposes both the kind and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Message is the text to show the client, in Lambda's words where Lambda
// has them. It quotes the configured limit and the offending entry.
func (e *Error) Message() string {
	switch e.Kind {
	case ErrZippedTooLarge:
		return fmt.Sprintf("Zipped size must be smaller than %d bytes", e.Limit)
	case ErrUnzippedTooLarge:
		return fmt.Sprintf("Unzipped size must be smaller than %d bytes", e.Limit)
	case ErrTooManyFiles:
		return fmt.Sprintf("Zip file must contain at most %d entries", e.Limit)
	case ErrUnsafePath:
		return fmt.Sprintf("Could not unzip uploaded file: entry %q %s.", e.Entry, e.Detail)
	default:
		return "Could not unzip uploaded file. Please check your file, then try to upload again."
	}
}
