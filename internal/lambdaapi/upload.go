package lambdaapi

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// Code uploads (CreateFunction, UpdateFunctionCode, PublishLayerVersion)
// carry a zip of up to 50 MB as base64 inside JSON: a body of up to 70 MB.
// They are not held in memory. As the body arrives it is hashed (when its
// SigV4 payload hash must be checked) and scanned (zipjson.go): the JSON
// around the zip is held within the body budget, the zip is decoded into
// a temporary file in UploadDir, unlinked as soon as it is created, so
// that closing it (on every path, a crash included) frees its space. The
// file's writes claim their space from the data dir's disk guard first.
// Once the body is complete and authenticated the handler decodes the
// JSON, and inspects and stores the zip from the file.

const (
	// uploadBuffers is the memory a streamed upload holds besides the
	// JSON around its zip (the read buffer and the base64 decoder's),
	// reserved in the body budget.
	uploadBuffers = 128 << 10
	// maxPendingUploads caps the bytes of streamed upload bodies whose
	// sender is not yet authenticated (SigV4 signing a body hash it did
	// not declare): those bodies go to disk, not memory, but must not
	// take the data dir's free space either.
	maxPendingUploads = 1 << 30
	// pendingUploadStep is how much of maxPendingUploads a body of
	// unknown length reserves at a time.
	pendingUploadStep = 1 << 20
)

// Paths of the zip in each code upload's JSON.
var (
	createZipPath = []string{"Code", "ZipFile"}
	updateZipPath = []string{"ZipFile"}
	layerZipPath  = []string{"Content", "ZipFile"}
)

type uploadFunc func(w http.ResponseWriter, r *http.Request, up *upload) error

// uploading is authenticated for a code upload: the body (up to limit
// bytes) is streamed, the zip at path spooled to disk, before fn runs.
func (a *API) uploading(limit int64, path []string, fn uploadFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verify, err := authenticateHeaders(a.auth, a.opts.Sessions, r)
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		pending := verify != nil
		up, err := a.receiveUpload(w, r, limit, path, pending, pending || auth.NeedsBodySum(r))
		if err != nil {
			a.refuseBody(w, r, err, limit)
			return
		}
		defer up.close()
		if pending {
			_, err = verify.VerifySum(up.sum, up.size)
		} else {
			err = auth.CheckBodySum(r, up.sum)
		}
		if err != nil {
			a.refuse(w, r, err)
			return
		}
		up.authenticated()
		if err := fn(w, r, up); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// upload is a code upload's body as its handler gets it.
type upload struct {
	a       *API
	pending bool // the sender is not yet authenticated
	// json is the body with every zip string replaced by a marker.
	json heldBytes
	sum  [sha256.Size]byte // of the whole body, when it was hashed
	size int64             // of the whole body

	file    *os.File          // the last zip string, decoded (unlinked)
	space   *diskspace.Writer // file's writer, claiming its space
	zipSize int64             // bytes of the last zip
	last    int               // number of the last zip string, 0: none
	b64Err  error             // the first zip string that is not base64
	diskErr error             // spooling the zip failed
	buffers int64             // uploadBuffers, when held
	shared  int64             // of maxPendingUploads, while pending
	hash    hash.Hash         // nil when the body needs no hash
	body    io.Reader         // r.Body within limits and budgets
}

// receiveUpload reads r's body (at most limit bytes, at the minimum
// rate, hashed when hashed), diverting the zip at path to a temporary
// file. On error everything is released.
func (a *API) receiveUpload(w http.ResponseWriter, r *http.Request, limit int64, path []string, pending, hashed bool) (up *upload, err error) {
	if r.Body == nil {
		r.Body = http.NoBody
	}
	defer r.Body.Close()
	if r.ContentLength > limit {
		return nil, errTooLarge
	}
	up = &upload{a: a, pending: pending, json: heldBytes{budget: a.bodies, pending: pending}}
	defer func() {
		if err != nil {
			up.close()
			up = nil
		}
	}()
	if !a.bodies.take(uploadBuffers, pending) {
		return up, busy()
	}
	up.buffers = uploadBuffers
	if pending && r.ContentLength > 0 {
		if !a.uploads.take(r.ContentLength, true) {
			return up, busy()
		}
		up.shared = r.ContentLength
	}
	up.body = newBodyReader(w, r, limit)
	if hashed {
		up.hash = sha256.New()
	}
	in := bufio.NewReaderSize(readerFunc(up.read), 32<<10)
	err = scanZipJSON(in, &up.json, path, up)
	if errors.Is(err, errStopped) {
		// The JSON is broken inside a zip string; its error is decided,
		// but the body must still be read whole to authenticate it.
		_, err = io.Copy(io.Discard, in)
	}
	if err != nil {
		return up, err
	}
	if up.hash != nil {
		up.hash.Sum(up.sum[:0])
	}
	return up, nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// read reads the body, hashing it and, while the sender is pending,
// counting it against its share of maxPendingUploads.
func (u *upload) read(p []byte) (int, error) {
	n, err := u.body.Read(p)
	u.size += int64(n)
	if u.hash != nil {
		u.hash.Write(p[:n])
	}
	if u.pending && u.size > u.shared {
		step := max(pendingUploadStep, u.size-u.shared)
		if !u.a.uploads.take(step, true) {
			return n, busy()
		}
		u.shared += step
	}
	return n, err
}

// begin implements zipSink: the n-th zip string replaces the previous one
// in the file (encoding/json keeps the last).
func (u *upload) begin(n int) io.Writer {
	u.last, u.zipSize = n, 0
	if u.diskErr != nil {
		return io.Discard
	}
	if u.file == nil {
		f, err := os.CreateTemp(u.a.uploadDir, "zip-")
		if err != nil {
			u.diskErr = fmt.Errorf("creating a file for the uploaded zip: %w", err)
			return io.Discard
		}
		// Unlinked at once: closing the file, on any path, frees it.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			u.diskErr = fmt.Errorf("unlinking the uploaded zip's file: %w", err)
			return io.Discard
		}
		u.file = f
	} else {
		u.space.Close()
		if err := u.file.Truncate(0); err != nil {
			u.diskErr = fmt.Errorf("truncating the uploaded zip's file: %w", err)
			return io.Discard
		}
		if _, err := u.file.Seek(0, io.SeekStart); err != nil {
			u.diskErr = fmt.Errorf("rewinding the uploaded zip's file: %w", err)
			return io.Discard
		}
	}
	var w io.Writer = u.file
	if u.a.opts.Space != nil {
		u.space = u.a.opts.Space.NewWriter(u.file)
		w = u.space
	}
	return zipWriter{u: u, w: w}
}

// end implements zipSink.
func (u *upload) end(n int, err error) {
	if err != nil && u.b64Err == nil {
		u.b64Err = err
	}
}

// zipWriter writes a zip string's bytes to the file; a failure is kept
// for the handler (after authentication) and the rest discarded.
type zipWriter struct {
	u *upload
	w io.Writer
}

func (z zipWriter) Write(p []byte) (int, error) {
	if z.u.diskErr != nil {
		return len(p), nil
	}
	n, err := z.w.Write(p)
	z.u.zipSize += int64(n)
	if err != nil {
		z.u.diskErr = fmt.Errorf("writing the uploaded zip: %w", err)
	}
	return len(p), nil
}

// authenticated moves what the upload holds to its authenticated sender.
func (u *upload) authenticated() {
	if !u.pending {
		return
	}
	u.a.bodies.authenticatedNow(u.buffers + u.json.held)
	u.a.uploads.give(u.shared, true)
	u.pending, u.json.pending, u.shared = false, false, 0
}

// close releases the file, its space and the budgets.
func (u *upload) close() {
	if u.space != nil {
		u.space.Close()
	}
	if u.file != nil {
		u.file.Close()
		u.file = nil
	}
	u.a.bodies.give(u.buffers+u.json.held, u.pending)
	u.a.uploads.give(u.shared, u.pending)
	u.buffers, u.json.held, u.shared = 0, 0, 0
	u.json.buf = nil
}

// decode is decode of the upload's JSON; a zip string that is not base64
// fails with its own error (the JSON holds "!" in its place).
func (u *upload) decode(v any) error {
	body := u.json.buf
	if len(bytes.TrimSpace(body)) == 0 {
		return errEmptyBody()
	}
	err := json.Unmarshal(body, v)
	// The zip strings were replaced by markers, so a base64 error names
	// the marker's position: report the zip's own. Go ≥ 1.27 wraps it in
	// an UnmarshalTypeError naming the field; keep that wrapping.
	var ce base64.CorruptInputError
	if errors.As(err, &ce) && u.b64Err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Err != nil {
			te.Err = u.b64Err
		} else {
			err = u.b64Err
		}
	}
	if err != nil {
		return errNotJSON(err)
	}
	return nil
}

// code returns the zip that a ZipFile field decoded to: the spooled file
// when it holds the last zip string's marker, else b itself (absent, or
// a value the scanner did not divert).
func (u *upload) code(b []byte) (io.ReaderAt, int64, error) {
	if n := markerNumber(b); n == 0 || n != u.last {
		return bytes.NewReader(b), int64(len(b)), nil
	}
	if u.diskErr != nil {
		if diskspace.IsLow(u.diskErr) {
			return nil, 0, registry.UploadSpaceError(u.diskErr)
		}
		return nil, 0, u.diskErr
	}
	return u.file, u.zipSize, nil
}

// refuseBody answers a body that could not be read.
func (a *API) refuseBody(w http.ResponseWriter, r *http.Request, err error, limit int64) {
	switch {
	case errors.Is(err, errTooLarge):
		a.refuse(w, r, tooLarge(r, limit))
	case errors.Is(err, errBodyTooSlow):
		a.refuse(w, r, lambdaerr.Wrap(lambdaerr.InvalidRequestContent, err,
			"The request body arrived slower than %d bytes per second.", bodyMinRate))
	case lambdaerr.Is(err, lambdaerr.TooManyRequests):
		a.refuse(w, r, err)
	default:
		a.refuse(w, r, lambdaerr.Wrap(lambdaerr.InvalidRequestContent, err, "Could not read the request body."))
	}
}
