package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/testkit"
)

// eventAnswer is what the API answered an Event invocation.
type eventAnswer struct {
	via       string // "sdk", "http" or "legacy"
	status    int
	requestID string // of a 202
	code      string // the error type of anything else
	message   string
}

func (a eventAnswer) String() string {
	return fmt.Sprintf("%s: %d %s %q", a.via, a.status, a.code, a.message)
}

// eventTimeout bounds one Event invocation: an answer must come, and
// well before this even on a loaded machine; past it the test fails
// rather than hang.
const eventTimeout = 2 * time.Minute

// sendEvent invokes name asynchronously through aws-sdk-go-v2 (via
// "sdk"), raw HTTP Invoke ("http") or the legacy InvokeAsync ("legacy"),
// and returns the answer, whatever it is.
func (ts *testServer) sendEvent(via, name, payload string) eventAnswer {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	a := eventAnswer{via: via}
	if via == "sdk" {
		out, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{
			FunctionName: aws.String(name), InvocationType: types.InvocationTypeEvent, Payload: []byte(payload),
		})
		if err == nil {
			a.status = int(out.StatusCode)
			a.requestID, _ = awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
			return a
		}
		var re *awshttp.ResponseError
		var ae smithy.APIError
		if !errors.As(err, &re) || !errors.As(err, &ae) {
			ts.t.Fatalf("Invoke %s (Event) through the SDK got no answer: %v", name, err)
		}
		a.status, a.code, a.message = re.HTTPStatusCode(), ae.ErrorCode(), ae.ErrorMessage()
		return a
	}
	path := "/2015-03-31/functions/" + name + "/invocations"
	if via == "legacy" {
		path = "/2014-11-13/functions/" + name + "/invoke-async/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, strings.NewReader(payload))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Amz-Invocation-Type", "Event")
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		ts.t.Fatalf("POST %s got no answer: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a.status = resp.StatusCode
	if a.status == http.StatusAccepted {
		a.requestID = resp.Header.Get("x-amzn-RequestId")
		return a
	}
	e := parseAPIError(ts.t, resp, body)
	a.code, a.message = e.code, e.message
	if a.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
		a.message += " [no Retry-After]"
	}
	return a
}

// wantRefused checks a refusal of an event that could not be stored: 503
// ServiceUnavailableException whose message says the event was not
// accepted, with Retry-After (raw HTTP).
func wantRefused(t *testing.T, a eventAnswer, why string) {
	t.Helper()
	if a.status == http.StatusAccepted {
		t.Errorf("%s: %s answered 202 (request %s) for an event the store could not take", why, a.via, a.requestID)
		return
	}
	if a.status != http.StatusServiceUnavailable || a.code != "ServiceUnavailableException" ||
		!strings.Contains(a.message, "the event was not accepted") || strings.Contains(a.message, "[no Retry-After]") {
		t.Errorf("%s: %s, want 503 ServiceUnavailableException saying the event was not accepted, with Retry-After", why, a)
	}
}

// fillDisk writes a file under dir until its filesystem is full, or has
// leaveMB free, and returns the file's path; the caller removes it.
func fillDisk(t *testing.T, dir string, leaveMB int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for freeMB(t, dir) > leaveMB || leaveMB == 0 {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	return path
}

// waitDelivered waits until every id in ids ran on name (its END line).
func (ts *testServer) waitDelivered(name string, ids []string) {
	ts.t.Helper()
	testkit.WaitFor(ts.t, 3*time.Minute, fmt.Sprintf("all %d accepted events of %s to run", len(ids), name), func() bool {
		log := ts.logText(name)
		for _, id := range ids {
			if !strings.Contains(log, endLine(id)) {
				return false
			}
		}
		return true
	})
}

// holdEvents sets name's reserved concurrency to 0 (true) or removes it:
// events of a held function stay in the stream.
func (ts *testServer) holdEvents(name string, hold bool) {
	ts.t.Helper()
	ctx := context.Background()
	var err error
	if hold {
		_, err = ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
			FunctionName: aws.String(name), ReservedConcurrentExecutions: aws.Int32(0),
		})
	} else {
		_, err = ts.sdk().DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(name)})
	}
	if err != nil {
		ts.t.Fatalf("reserved concurrency of %s: %v", name, err)
	}
}

var eventVias = []string{"sdk", "http", "legacy"}

// sendAccepted sends name one event through each of eventVias, the i-th
// printing "<label> i", and returns their request ids; when says where
// in the test they were sent, and the test fails unless each was
// accepted (202 and a request id).
func (ts *testServer) sendAccepted(name, label, when string) []string {
	ts.t.Helper()
	var ids []string
	for i, via := range eventVias {
		a := ts.sendEvent(via, name, fmt.Sprintf(`{"print":"%s %d"}`, label, i))
		if a.status != http.StatusAccepted || a.requestID == "" {
			ts.t.Fatalf("%s: %s", when, a)
		}
		ids = append(ids, a.requestID)
	}
	return ids
}

// TestAsyncDiskFull: on a data dir whose disk is below the reserve, an
// Event invocation through aws-sdk-go-v2, raw HTTP and the legacy
// InvokeAsync is answered 503 before anything is stored, never 202; the
// events accepted before stay and are delivered; once space is freed,
// events are accepted and delivered again without a restart.
func TestAsyncDiskFull(t *testing.T) {
	t.Parallel()
	// Room for the store and one environment's 512 MB /tmp.
	dataDir := mountTmpfs(t, 800)
	ts := startServer(t, dataDir, asyncConfig, func(c *config.Config) {
		c.DiskReserveMB = 16
		c.Prewarm = 0 // keep the tmpfs for the store
	})
	ts.createKitchensink("disk")
	ts.holdEvents("disk", true)
	accepted := ts.sendAccepted("disk", "before", "before the disk filled")

	filler := fillDisk(t, dataDir, 8) // half the reserve left
	t.Cleanup(func() { _ = os.Remove(filler) })
	t.Logf("below the reserve: %d MB free", freeMB(t, dataDir))
	before := ts.EventStats().Accepted
	for _, via := range eventVias {
		a := ts.sendEvent(via, "disk", `{"print":"on a full disk"}`)
		wantRefused(t, a, "below the disk reserve")
		if !strings.Contains(a.message, "storage is full") {
			t.Errorf("below the disk reserve: %s does not say the storage is full", a)
		}
	}
	if after := ts.EventStats().Accepted; after != before {
		t.Errorf("%d events were stored on a full disk", after-before)
	}

	// Space returns: events are accepted again, and every accepted one,
	// before and after, is delivered.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	accepted = append(accepted, ts.sendAccepted("disk", "after", "after freeing space")...)
	// One environment at a time: the tmpfs holds one 512 MB /tmp.
	if _, err := ts.sdk().PutFunctionConcurrency(context.Background(), &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("disk"), ReservedConcurrentExecutions: aws.Int32(1),
	}); err != nil {
		t.Fatal(err)
	}
	ts.waitDelivered("disk", accepted)
}

// mountTmpfsAt mounts a tmpfs of sizeMB at dir (created) and unmounts it
// when the test ends, before whatever registered its cleanup earlier.
func mountTmpfsAt(t *testing.T, dir string, sizeMB int) {
	t.Helper()
	requireRoot(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", sizeMB)); err != nil {
		testkit.Skipf(t, "cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the tmpfs %s: %v", dir, err)
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
}

// TestAsyncStoreENOSPC: JetStream itself finds the disk full — its store
// is a small filesystem of its own under a data dir with room, so the
// disk reserve does not refuse first, as when something else fills the
// disk to its last byte between the reserve's check and the write. An
// Event invocation is then answered 503 before anything is stored, never
// 202, through aws-sdk-go-v2, raw HTTP and the legacy InvokeAsync, and
// /healthz fails "store". JetStream takes no write on that stream again
// until it is reloaded, so freeing space is not enough: the events are
// still refused, clearly, until a restart; after it, nothing accepted
// before is lost and new events are accepted and delivered.
//
// It is long because it is one story on one data dir: accept, fill,
// refuse, free, restart, deliver.
func TestAsyncStoreENOSPC(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	storeDir := natsbus.StoreDir(dataDir)
	mountTmpfsAt(t, storeDir, 64)
	ts := startServer(t, dataDir, asyncConfig, func(c *config.Config) { c.Prewarm = 0 })
	ts.createKitchensink("enospc")
	ts.holdEvents("enospc", true)
	accepted := ts.sendAccepted("enospc", "before", "before the store's disk filled")

	filler := fillDisk(t, storeDir, 0)
	t.Cleanup(func() { _ = os.Remove(filler) })
	t.Logf("the store's disk is full: %d MB free; the data dir's disk: %d MB", freeMB(t, storeDir), freeMB(t, dataDir))
	// The last page of the stream's block file may still take an event
	// or a few: each is answered 202 (stored) or refused, until the store
	// refuses; after a refusal, nothing is accepted.
	var refused []eventAnswer
	for i := 0; len(refused) < 2*len(eventVias); i++ {
		if i > 200 {
			t.Fatalf("200 events accepted on a full store disk")
		}
		via := eventVias[i%len(eventVias)]
		a := ts.sendEvent(via, "enospc", fmt.Sprintf(`{"print":"full %d"}`, i))
		if a.status != http.StatusAccepted {
			refused = append(refused, a)
			continue
		}
		if len(refused) > 0 {
			t.Errorf("%s: 202 after a refusal on a full store disk", a.via)
		}
		accepted = append(accepted, a.requestID)
	}
	for _, a := range refused {
		wantRefused(t, a, "JetStream's disk full")
		if !strings.Contains(a.message, "no space left on device") || !strings.Contains(a.message, "restart owl serve") {
			t.Errorf("JetStream's disk full: %s does not name the cause and the remedy", a)
		}
	}
	t.Logf("%d events accepted, then refused: %s", len(accepted), refused[0])
	noAuth := map[string]string{"Authorization": ""}
	if resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth); resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), `"store"`) {
		t.Errorf("/healthz with a stream that stopped writing: %d %s", resp.StatusCode, body)
	}

	// Space returns; the stream still takes no write, and says so.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for _, via := range eventVias {
		wantRefused(t, ts.sendEvent(via, "enospc", `{"print":"freed, not restarted"}`), "space freed, before a restart")
	}

	// After a restart, every event accepted before is there, new ones are
	// accepted, and all are delivered.
	ts.stop()
	ts = startServer(t, dataDir, asyncConfig, func(c *config.Config) { c.Prewarm = 0 })
	accepted = append(accepted, ts.sendAccepted("enospc", "after", "after freeing space and a restart")...)
	if resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the restart: %d %s", resp.StatusCode, body)
	}
	ts.holdEvents("enospc", false)
	ts.waitDelivered("enospc", accepted)
}
