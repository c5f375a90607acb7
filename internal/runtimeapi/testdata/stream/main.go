// Command stream is an aws-lambda-go function for the runtimeapi tests that
// returns an io.Reader response: {"size":n} streams n bytes; {"fail":m}
// streams some bytes and then fails with an error message of m bytes, which
// aws-lambda-go reports in the Lambda-Runtime-Function-Error-* trailers.
package main

import (
	"bytes"
	"io"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Size int `json:"size"`
	Fail int `json:"fail"`
}

// streamBroken is the error type the trailer reports (errorType is the Go
// type name).
type streamBroken struct{ msg string }

func (e *streamBroken) Error() string { return e.msg }

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func handle(e event) (io.Reader, error) {
	if e.Fail > 0 {
		return &failingReader{
			r:   strings.NewReader(`{"partial":`),
			err: &streamBroken{msg: strings.Repeat("x", e.Fail)},
		}, nil
	}
	// Not a *bytes.Reader: an io.Reader of unknown length, sent chunked.
	return io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), e.Size))), nil
}

func main() { lambda.Start(handle) }
