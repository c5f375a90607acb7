package runtimeapi

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// sink is a Stream that records what it gets and hands each write to the
// test; failAfter > 0 makes writes past that many fail, as a departed
// client's do.
type sink struct {
	mu          sync.Mutex
	contentType string
	got         bytes.Buffer
	writes      chan string
	failAfter   int
	n           int
}

func newSink() *sink { return &sink{writes: make(chan string, 100)} }

func (s *sink) Begin(ct string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contentType = ct
	return nil
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.failAfter > 0 && s.n > s.failAfter {
		return 0, errors.New("client gone")
	}
	s.got.Write(p)
	s.writes <- string(p)
	return len(p), nil
}

func (s *sink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

// streamHeader is what a streaming runtime sends with its /response.
func streamHeader(contentType string) http.Header {
	return http.Header{hdrResponseMode: {"streaming"}, "Content-Type": {contentType}}
}

// postStream starts a streamed /response for id whose body the test
// writes through the returned pipe, with trailer set once the body ends.
func (c *runtimeClient) postStream(t *testing.T, id, contentType string, trailer http.Header) (*io.PipeWriter, <-chan reply) {
	t.Helper()
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	ch := make(chan reply, 1)
	go func() {
		ch <- c.request(testCtx(t), http.MethodPost, apiBase+"/invocation/"+id+"/response", pr, streamHeader(contentType), trailer)
	}()
	return pw, ch
}

// TestStreamedResponse: a streamed /response reaches the invocation's
// Stream chunk by chunk while the runtime is still writing, and the
// Outcome says Streamed once the body ends.
func TestStreamedResponse(t *testing.T) {
	s, rc, ctx := newTestEnv(t, Config{})
	sk := newSink()
	inv := testInvocation("req-1", `{}`)
	inv.Stream = sk
	invCh := invokeAsync(ctx, s, inv)
	if r := rc.next(ctx); r.status != http.StatusOK {
		t.Fatalf("/next: %+v", r)
	}
	pw, postCh := rc.postStream(t, "req-1", "text/plain", nil)
	if _, err := pw.Write([]byte("first ")); err != nil {
		t.Fatal(err)
	}
	// The runtime has not finished its post: the first chunk is through.
	if got := receive(t, sk.writes); got != "first " {
		t.Fatalf("first write %q", got)
	}
	select {
	case r := <-invCh:
		t.Fatalf("Invoke returned before the stream ended: %+v", r)
	default:
	}
	pw.Write([]byte("second"))
	pw.Close()
	wantAccepted(t, receive(t, postCh))
	res := receive(t, invCh)
	if res.err != nil || !res.out.Streamed || res.out.IsError || res.out.Broken != nil || len(res.out.Payload) != 0 {
		t.Fatalf("outcome %+v, %v", res.out, res.err)
	}
	if sk.text() != "first second" || sk.contentType != "text/plain" {
		t.Fatalf("sink got %q as %q", sk.text(), sk.contentType)
	}
	// The environment goes on: the next invocation is an ordinary one.
	invCh = invokeAsync(ctx, s, testInvocation("req-2", `{}`))
	rc.next(ctx)
	rc.respond(t, ctx, invCh, "req-2", `"ok"`)
}

// TestStreamedResponseErrors: an error after the first byte comes in the
// trailers; a client gone cuts the runtime's post off and marks the
// Outcome Broken; a stream past MaxStreamBytes is refused with 413 and
// Function.ResponseSizeTooLarge; without a Stream, a streamed post is read
// whole.
func TestStreamedResponseErrors(t *testing.T) {
	s, rc, ctx := newTestEnv(t, Config{MaxStreamBytes: 16})
	invoke := func(t *testing.T, id string, sk Stream) <-chan invokeResult {
		inv := testInvocation(id, `{}`)
		inv.Stream = sk
		ch := invokeAsync(ctx, s, inv)
		if r := rc.next(ctx); r.status != http.StatusOK {
			t.Fatalf("/next: %+v", r)
		}
		return ch
	}

	t.Run("trailers", func(t *testing.T) {
		sk := newSink()
		invCh := invoke(t, "err-1", sk)
		body := `{"errorType":"Error","errorMessage":"broke mid-stream"}`
		trailer := http.Header{hdrErrorType: nil, hdrErrorBody: nil}
		pw, postCh := rc.postStream(t, "err-1", "application/octet-stream", trailer)
		pw.Write([]byte("partial"))
		receive(t, sk.writes)
		trailer.Set(hdrErrorType, "Error")
		trailer.Set(hdrErrorBody, base64.StdEncoding.EncodeToString([]byte(body)))
		pw.Close()
		wantAccepted(t, receive(t, postCh))
		res := receive(t, invCh)
		if res.err != nil || !res.out.Streamed || !res.out.IsError || res.out.ErrorType != "Error" || string(res.out.Payload) != body || res.out.Broken != nil {
			t.Fatalf("outcome %+v (%s), %v", res.out, res.out.Payload, res.err)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		sk := newSink()
		sk.failAfter = 1
		invCh := invoke(t, "gone-1", sk)
		pw, postCh := rc.postStream(t, "gone-1", "text/plain", nil)
		pw.Write([]byte("one"))
		receive(t, sk.writes)
		_, werr := pw.Write([]byte("two")) // the client is gone: Invoke returns while the runtime still writes
		res := receive(t, invCh)
		if !errors.Is(res.out.Broken, ErrStreamBroken) || !res.out.IsError || !res.out.Streamed {
			t.Fatalf("outcome %+v, %v (write %v)", res.out, res.err, werr)
		}
		// The runtime's post fails: its connection was cut.
		pw.Close()
		if r := receive(t, postCh); r.err == nil && r.status == http.StatusAccepted {
			t.Fatalf("the runtime's post was accepted after its client left: %+v", r)
		}
	})

	t.Run("too large", func(t *testing.T) {
		sk := newSink()
		invCh := invoke(t, "big-1", sk)
		pw, postCh := rc.postStream(t, "big-1", "text/plain", nil)
		go func() {
			pw.Write([]byte(strings.Repeat("x", 10)))
			pw.Write([]byte(strings.Repeat("y", 10)))
			pw.Close()
		}()
		res := receive(t, invCh)
		if res.out.ErrorType != lambdaerr.FunctionResponseSizeTooLarge || !errors.Is(res.out.Broken, ErrStreamBroken) {
			t.Fatalf("outcome %+v (%s), %v", res.out, res.out.Payload, res.err)
		}
		if r := receive(t, postCh); r.err == nil && r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("post answered %+v, want 413", r)
		}
		if strings.Contains(sk.text(), "y") {
			t.Fatalf("bytes past the limit reached the client: %q", sk.text())
		}
	})

	t.Run("no stream", func(t *testing.T) {
		invCh := invoke(t, "whole-1", nil)
		pw, postCh := rc.postStream(t, "whole-1", "text/plain", nil)
		pw.Write([]byte("all "))
		pw.Write([]byte("at once"))
		pw.Close()
		wantAccepted(t, receive(t, postCh))
		res := receive(t, invCh)
		if res.err != nil || res.out.Streamed || string(res.out.Payload) != "all at once" {
			t.Fatalf("outcome %+v (%s), %v", res.out, res.out.Payload, res.err)
		}
	})
}

// TestStreamedAWSLambdaGo: an unmodified aws-lambda-go function returning
// an io.Reader (sent chunked, without the Response-Mode header) streams to
// the invocation's Stream, past the 6 MB of a buffered response, and its
// error after the first byte comes from the trailers.
func TestStreamedAWSLambdaGo(t *testing.T) {
	s, f := startEnvironment(t, "stream")
	const size = 7 << 20
	sk := newSink()
	inv := testInvocation("go-1", fmt.Sprintf(`{"size":%d}`, size))
	inv.Stream = sk
	drain := make(chan struct{})
	go func() { // the sink's channel holds 100 writes: keep it flowing
		defer close(drain)
		for range sk.writes {
		}
	}()
	out, err := invokeWatching(t, s, f, inv)
	if err != nil || !out.Streamed || out.IsError || sk.text() != strings.Repeat("a", size) {
		t.Fatalf("Invoke = %+v, %v; the sink got %d bytes, want %d", out, err, len(sk.text()), size)
	}

	sk2 := newSink()
	inv = testInvocation("go-2", `{"fail":100}`)
	inv.Stream = sk2
	out, err = invokeWatching(t, s, f, inv)
	want := `{"errorMessage":"` + strings.Repeat("x", 100) + `","errorType":"streamBroken"}`
	if err != nil || !out.Streamed || !out.IsError || out.ErrorType != "streamBroken" || string(out.Payload) != want || sk2.text() != `{"partial":` {
		t.Fatalf("Invoke = %+v (%s), %v; the sink got %q", out, out.Payload, err, sk2.text())
	}
	close(sk.writes)
	<-drain
}
