package server_test

// The store stays the size of what is live: deploy cycles, crashes during
// deploys and a full disk leave nothing behind for good.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
)

// storeCycles is how many deploy cycles TestStoreDeployCycles runs:
// OWL_STORE_CYCLES (docs/benchmarks-history.md runs 1000), else 200.
func storeCycles(t *testing.T) int { return positiveEnv(t, "OWL_STORE_CYCLES", 200) }

// storeInvokeEvery: cycles invoke their function on every cycle, or on
// every n-th with OWL_STORE_INVOKE_EVERY=n (docs/benchmarks-history.md's 1000
// cycles use 10, to stay within minutes: cold starts dominate a cycle).
func storeInvokeEvery(t *testing.T) int { return positiveEnv(t, "OWL_STORE_INVOKE_EVERY", 1) }

// positiveEnv is the positive integer the environment variable name
// holds, or def when it is not set; anything else fails t.
func positiveEnv(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// TestStoreDeployCycles runs create / invoke / update code / update
// configuration / invoke / delete of one function over and over beside
// one function that stays, each cycle with new code, and checks that the
// data directory ends within twice its size with only the live function,
// and that the server's memory stays bounded.
func TestStoreDeployCycles(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	ts := startServer(t, dataDir)
	ts.createKitchensink("keeper")
	if r := ts.invoke("keeper", `{"name":"keeper"}`); r.funcErr != "" {
		t.Fatalf("keeper: %s", r.payload)
	}
	live := diskUsage(t, dataDir)
	rss0 := procStatusKB(t, "VmRSS") >> 10
	n, every := storeCycles(t), storeInvokeEvery(t)
	start := time.Now()
	ctx := context.Background()
	for i := range n {
		name := fmt.Sprintf("cycle-%d", i%7)
		ts.createKitchensink(name, func(in *lambda.CreateFunctionInput) {
			in.Code.ZipFile = kitchenZipWith(t, zipEntry{name: "cycle", body: fmt.Sprintf("a-%d", i)})
		})
		if r := invokeEvery(ts, i, every, name, "a"); r != nil {
			t.Fatalf("cycle %d: invoke after create: %+v", i, r)
		}
		if _, err := ts.sdk().UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String(name),
			ZipFile:      kitchenZipWith(t, zipEntry{name: "cycle", body: fmt.Sprintf("b-%d", i)}),
		}); err != nil {
			t.Fatalf("cycle %d: UpdateFunctionCode: %v", i, err)
		}
		ts.updateConfig(&lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String(name),
			Environment:  &types.Environment{Variables: map[string]string{"CYCLE": strconv.Itoa(i)}},
		})
		if r := invokeEvery(ts, i, every, name, "b"); r != nil {
			t.Fatalf("cycle %d: invoke after update: %+v", i, r)
		}
		if _, err := ts.sdk().DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String(name)}); err != nil {
			t.Fatalf("cycle %d: DeleteFunction: %v", i, err)
		}
		if (i+1)%max(50, n/10) == 0 {
			t.Logf("after %d cycles (%v): data dir %d MB, RSS %d MB", i+1, time.Since(start).Round(time.Second),
				diskUsage(t, dataDir)>>20, procStatusKB(t, "VmRSS")>>10)
		}
	}
	t.Logf("%d cycles in %v; data dir %d MB with only the keeper live (%d MB), RSS %d -> %d MB",
		n, time.Since(start).Round(time.Second), diskUsage(t, dataDir)>>20, live>>20, rss0, procStatusKB(t, "VmRSS")>>10)
	if r := ts.invoke("keeper", `{"name":"still"}`); r.payload != `{"message":"hello still"}` {
		t.Errorf("keeper after the cycles: %+v", r)
	}
	// Memory the server still holds after the cycles (garbage collected
	// and returned, so what is left is retained: caches, watchers, the
	// store's loaded blocks). Generous: the test process holds the SDK,
	// the zips and the server; the bound is about what grows with cycles.
	runtime.GC()
	debug.FreeOSMemory()
	rss := procStatusKB(t, "VmRSS") >> 10
	t.Logf("retained after the cycles: RSS %d MB (%d MB before them)", rss, rss0)
	if rss > rss0+250 {
		t.Errorf("RSS %d MB after %d cycles, %d MB before: grows with the cycles", rss, n, rss0)
	}
	// The collector runs after every deletion and periodically; the
	// store is compacted as it goes. Give a loaded machine time.
	var used int64
	eventually(t, 90*time.Second, func() error {
		if used = diskUsage(t, dataDir); used > 2*live {
			return fmt.Errorf("data dir %d MB after %d cycles, live data %d MB: more than twice", used>>20, n, live>>20)
		}
		return nil
	})
	t.Logf("settled: data dir %d MB (live %d MB, %d files under nats)", used>>20, live>>20, countFiles(filepath.Join(dataDir, "nats")))
}

// invokeEvery invokes name with a hello for who on every every-th cycle,
// and returns the result when it is not the expected answer (nil else).
func invokeEvery(ts *testServer, cycle, every int, name, who string) *invokeResult {
	if cycle%every != 0 {
		return nil
	}
	if r := ts.invoke(name, `{"name":"`+who+`"}`); r.payload != `{"message":"hello `+who+`"}` {
		return &r
	}
	return nil
}

func countFiles(dir string) int {
	n := 0
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	return n
}

// bigZip is a zip of size bytes of random (incompressible) data, stored:
// its content is the seed's.
func bigZip(t testing.TB, size int, seed string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "blob-" + seed, Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1<<20)
	r := mrand.New(mrand.NewPCG(uint64(len(seed)), uint64(crc32.ChecksumIEEE([]byte(seed)))))
	for written := 0; written < size; written += len(block) {
		for i := range block {
			block[i] = byte(r.Uint32())
		}
		if _, err := w.Write(block[:min(len(block), size-written)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// createBodyZip is a CreateFunction request body for a provided function
// with this zip.
func createBodyZip(t testing.TB, name string, zip []byte) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
		"Role": "arn:aws:iam::000000000000:role/owl", "Code": map[string]any{"ZipFile": zip},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStoreCrashDuringDeploy kills `owl serve` with SIGKILL while it
// stores a 40 MB deployment, and checks that after the restart the
// collection removes what the interrupted upload left in the store.
func TestStoreCrashDuringDeploy(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	natsDir := filepath.Join(dataDir, "nats")
	env := []string{"OWL_FREEZE_AFTER=0", "OWL_STORE_COLLECT_INTERVAL=2s"}
	p := startOwl(t, dataDir, env...)
	p.createKitchensink("survivor")
	// Let the start's own writes settle before taking the reference size.
	var before int64
	eventually(t, 30*time.Second, func() error {
		a := diskUsage(t, natsDir)
		time.Sleep(time.Second)
		if before = diskUsage(t, natsDir); before != a {
			return fmt.Errorf("store still changing: %d -> %d", a, before)
		}
		return nil
	})
	big := bigZip(t, 40<<20, "crash")
	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		body := createBodyZip(t, fmt.Sprintf("big-%d", attempt), big)
		answered := make(chan struct{})
		go func() {
			defer close(answered)
			req, _ := http.NewRequest(http.MethodPost, p.URL+"/2015-03-31/functions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+testToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		// Kill once a good part of the upload is in the store's files.
		for !killed {
			select {
			case <-answered:
				t.Logf("attempt %d: the deploy completed before the kill; again", attempt)
			default:
				if grown := diskUsage(t, natsDir) - before; grown >= 16<<20 {
					if err := p.cmd.Process.Kill(); err != nil {
						t.Fatal(err)
					}
					killed = true
					t.Logf("killed with %d MB of the 40 MB deploy stored", grown>>20)
				}
				time.Sleep(5 * time.Millisecond)
				continue
			}
			break
		}
		<-answered
	}
	if !killed {
		t.Skip("every deploy completed before the kill could land; nothing to check")
	}
	if code := p.waitExit(t, 10*time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("owl serve after kill -9: exit %d", code)
	}
	t.Logf("after the crash: store %d MB (%d MB before the deploy)", diskUsage(t, natsDir)>>20, before>>20)

	p = startOwl(t, dataDir, env...)
	eventually(t, 90*time.Second, func() error {
		if used := diskUsage(t, natsDir); used > before+10<<20 {
			return fmt.Errorf("store %d MB after the restart, %d MB before the interrupted deploy", used>>20, before>>20)
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		if !regexp.MustCompile(`msg="store collected" .*orphan_chunks=[1-9]`).MatchString(p.stderr.String()) {
			return fmt.Errorf("no collection reported the interrupted upload's chunks:\n%s", p.stderr.String())
		}
		return nil
	})
	if r := p.invoke("survivor", `{"name":"after"}`); r.payload != `{"message":"hello after"}` {
		t.Errorf("invoke after the crash and restart: %+v", r)
	}
	// The same deploy works now, and its function is whole.
	resp, b := p.do(http.MethodPost, "/2015-03-31/functions", createBodyZip(t, "big-again", big), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the deploy after the restart: %d %s", resp.StatusCode, b)
	}
	resp, b = p.do(http.MethodGet, "/owl/v1/functions/big-again/code", nil, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, big) {
		t.Errorf("the stored code after the restart: %d, %d bytes, want the %d deployed", resp.StatusCode, len(b), len(big))
	}
}

// mountTmpfs mounts a tmpfs of sizeMB at a new directory and unmounts it
// when the test ends (after the servers on it stopped: cleanups run last
// registered first).
func mountTmpfs(t *testing.T, sizeMB int) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "data")
	mountTmpfsAt(t, dir, sizeMB)
	return dir
}

// freeMB is the free space of dir's filesystem.
func freeMB(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize >> 20
}

// timed runs fn and fails t when it took longer than a clear answer may:
// well under the store's 5 s ack timeout that a wedged store answers after.
func timed(t *testing.T, what string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("%s took %v: not a clear answer at once", what, d.Round(time.Millisecond))
	}
}

// TestStoreDiskFull fills a small data dir (a 1.5 GB tmpfs: an
// environment's 512 MB /tmp disk counts as used while it lives) with code,
// then pushes it below the disk reserve with a file of its own, and checks
// that writes needing space are refused clearly and at once while reads,
// invokes of unpacked code and deletes keep working, and that everything
// works again once space is freed, without a restart.
func TestStoreDiskFull(t *testing.T) {
	t.Parallel()
	dataDir := mountTmpfs(t, 1536)
	ts := startServer(t, dataDir, func(c *config.Config) {
		c.DiskReserveMB = 48
		c.StoreCollectInterval = 2 * time.Second
		c.Prewarm = 0 // keep the tmpfs for the store
	})
	ts.createKitchensink("warm")
	if r := ts.invoke("warm", `{"name":"warm"}`); r.funcErr != "" {
		t.Fatalf("warm: %s", r.payload)
	}
	ts.createKitchensink("cold", func(in *lambda.CreateFunctionInput) {
		in.Code.ZipFile = kitchenZipWith(t, zipEntry{name: "cold", body: "never unpacked before the disk fills"})
	})

	// Deploy 20 MB functions until the store refuses one.
	var filled []string
	for i := 0; ; i++ {
		if i > 80 {
			t.Fatalf("80 deploys of 20 MB fit on a 1.5 GB tmpfs (%d MB free)", freeMB(t, dataDir))
		}
		name := fmt.Sprintf("fill-%d", i)
		req := createBodyZip(t, name, bigZip(t, 20<<20, name))
		start := time.Now()
		resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", req, nil)
		if resp.StatusCode == http.StatusCreated {
			filled = append(filled, name)
			continue
		}
		// Only the refusal must be quick (storing 20 MB on a loaded
		// machine may take seconds).
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the refused deploy took %v: not a clear answer at once", d.Round(time.Millisecond))
		}
		wantError(t, resp, body, http.StatusBadRequest, "CodeStorageExceededException", "~not enough disk space")
		t.Logf("deploy %d refused with %d MB free: %s", i, freeMB(t, dataDir), body)
		break
	}
	if len(filled) < 5 {
		t.Fatalf("only %d deploys fitted", len(filled))
	}

	// Below the reserve: a file of the host's takes what is left above
	// half the reserve.
	filler := filepath.Join(dataDir, "filler")
	if f := freeMB(t, dataDir) - 24; f > 0 {
		if err := os.WriteFile(filler, make([]byte, f<<20), 0o600); err != nil {
			t.Fatalf("filling the disk: %v", err)
		}
	}
	t.Logf("below the reserve: %d MB free", freeMB(t, dataDir))
	noAuth := map[string]string{"Authorization": ""}
	if resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth); resp.StatusCode != http.StatusServiceUnavailable ||
		string(body) != `{"status":"unavailable","failed":["disk"]}` {
		t.Errorf("/healthz below the disk reserve: %d %s", resp.StatusCode, body)
	}
	timed(t, "a configuration update on a full disk", func() {
		resp, body := ts.do(http.MethodPut, "/2015-03-31/functions/warm/configuration", []byte(`{"Timeout":5}`), nil)
		wantError(t, resp, body, http.StatusServiceUnavailable, "ServiceUnavailableException", "~storage is full")
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("a 503 without Retry-After")
		}
	})
	timed(t, "a small deploy on a full disk", func() {
		resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", createBody(t, "tiny", withCode(tinyZip(t))), nil)
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("a small deploy on a full disk: %d %s", resp.StatusCode, body)
		}
	})
	timed(t, "reads on a full disk", func() {
		if resp, body := ts.do(http.MethodGet, "/2015-03-31/functions/warm", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GetFunction on a full disk: %d %s", resp.StatusCode, body)
		}
		if resp, body := ts.do(http.MethodGet, "/2015-03-31/functions", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("ListFunctions on a full disk: %d %s", resp.StatusCode, body)
		}
	})
	timed(t, "an invoke of unpacked code on a full disk", func() {
		if r := ts.invoke("warm", `{"name":"full"}`); r.payload != `{"message":"hello full"}` {
			t.Errorf("invoke on a full disk: %+v", r)
		}
	})
	timed(t, "an invoke that needs its code unpacked on a full disk", func() {
		resp, body := ts.rawInvoke("cold/invocations", `{"name":"cold"}`, nil)
		// Its 512 MB /tmp is asked for first (env.go), then its code.
		wantError(t, resp, body, http.StatusServiceUnavailable, "ServiceUnavailableException", "~Cannot start the function: no disk space")
	})
	for _, name := range filled[:4] {
		timed(t, "a delete on a full disk", func() {
			if resp, body := ts.do(http.MethodDelete, "/2015-03-31/functions/"+name, nil, nil); resp.StatusCode != http.StatusNoContent {
				t.Errorf("DeleteFunction %s on a full disk: %d %s", name, resp.StatusCode, body)
			}
		})
	}

	// Space returns: everything works again, without a restart.
	if err := os.Remove(filler); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	// Healthy again once the deletions' space is reclaimed too (the
	// filler alone may leave the disk just at the reserve).
	eventually(t, 60*time.Second, func() error {
		if resp, body := ts.do(http.MethodGet, "/healthz", nil, noAuth); resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz after freeing space (%d MB free): %d %s", freeMB(t, dataDir), resp.StatusCode, body)
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		resp, body := ts.do(http.MethodPut, "/2015-03-31/functions/warm/configuration", []byte(`{"Timeout":6}`), nil)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("configuration update after freeing space: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	// The update retired warm's environment, whose /tmp counted as used
	// until its disk was released.
	eventually(t, 60*time.Second, func() error {
		resp, body := ts.rawInvoke("cold/invocations", `{"name":"cold"}`, nil)
		if resp.StatusCode != http.StatusOK || string(body) != `{"message":"hello cold"}` {
			return fmt.Errorf("invoke of cold after freeing space (%d MB free): %d %s", freeMB(t, dataDir), resp.StatusCode, body)
		}
		return nil
	})
	// And cold's goes with cold, leaving room for after's.
	if resp, body := ts.do(http.MethodDelete, "/2015-03-31/functions/cold", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("DeleteFunction cold: %d %s", resp.StatusCode, body)
	}
	ts.waitEnvironments(0, "after cold was deleted")
	ts.createKitchensink("after", func(in *lambda.CreateFunctionInput) {
		in.Code.ZipFile = kitchenZipWith(t, zipEntry{name: "after", body: "space is back"})
	})
	if r := ts.invoke("after", `{"name":"after"}`); r.payload != `{"message":"hello after"}` {
		t.Errorf("invoke of a function created after freeing space: %+v", r)
	}
	// The deleted functions' space is given back too: a 20 MB deploy fits
	// in what the four deletions freed (less what cold and after took).
	eventually(t, 60*time.Second, func() error {
		resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", createBodyZip(t, "refill", bigZip(t, 20<<20, "refill")), nil)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("a 20 MB deploy after four deletions: %d %s", resp.StatusCode, body)
		}
		return nil
	})
}
