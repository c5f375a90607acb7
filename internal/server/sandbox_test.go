package server_test

// What a function sees of its sandbox, and how environments scale with
// concurrent invocations.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

func TestSandboxFacts(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("facts", func(in *lambda.CreateFunctionInput) {
		in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(600)}
	})

	t.Run("identity", func(t *testing.T) {
		r := ts.as(t).invoke("facts", `{"action":"whoami"}`)
		var who struct {
			UID, GID, Pid int
			Hostname      string
		}
		if err := json.Unmarshal([]byte(r.payload), &who); err != nil || r.funcErr != "" {
			t.Fatalf("whoami: %s: %v", r.payload, err)
		}
		if who.UID != 993 || who.GID != 990 {
			t.Errorf("the function runs as %d:%d, want 993:990", who.UID, who.GID)
		}
		host, _ := os.Hostname()
		if who.Hostname != "owl" || who.Hostname == host {
			t.Errorf("hostname %q (host's is %q), want the sandbox's own \"owl\"", who.Hostname, host)
		}
		if who.Pid < 1 || who.Pid > 10 {
			t.Errorf("pid %d: the function does not have its own pid namespace", who.Pid)
		}
	})

	t.Run("filesystem", func(t *testing.T) {
		ts := ts.as(t)
		for path, writable := range map[string]bool{"/owl-test": false, "/var/task/owl-test": false, "/etc/owl-test": false, "/tmp/owl-test": true} {
			r := ts.invoke("facts", `{"action":"write","path":"`+path+`"}`)
			var out struct {
				OK  bool
				Err string
			}
			if err := json.Unmarshal([]byte(r.payload), &out); err != nil || r.funcErr != "" {
				t.Fatalf("write %s: %s: %v", path, r.payload, err)
			}
			if out.OK != writable {
				t.Errorf("writing %s: ok=%v (%s), want writable=%v", path, out.OK, out.Err, writable)
			}
		}
		if mb := tmpSizeMB(t, ts, "facts"); mb != 600 {
			t.Errorf("/tmp is %d MB, want EphemeralStorage 600", mb)
		}
		r := ts.invoke("facts", `{"action":"readdir","path":"/"}`)
		var root []string
		if err := json.Unmarshal([]byte(r.payload), &root); err != nil {
			t.Fatalf("readdir /: %s: %v", r.payload, err)
		}
		if !slices.Contains(root, "var") || !slices.Contains(root, "tmp") || !slices.Contains(root, "usr") {
			t.Errorf("/ lacks var, tmp or usr: %v", root)
		}
		for _, private := range []string{"root", "home"} {
			if slices.Contains(root, private) {
				t.Errorf("the sandbox's / shows /%s: %v", private, root)
			}
			if r := ts.invoke("facts", `{"action":"readdir","path":"/`+private+`"}`); r.funcErr == "" && r.payload != "null" {
				t.Errorf("the function lists /%s: %s", private, r.payload)
			}
		}
		// Nor does it see the host's data dir or Owl's credentials.
		if r := ts.invoke("facts", `{"action":"readdir","path":"`+ts.dataDir+`"}`); r.funcErr == "" {
			t.Errorf("the function lists Owl's data dir: %s", r.payload)
		}
	})

	t.Run("memory report", func(t *testing.T) {
		r := ts.as(t).invoke("facts", `{"action":"alloc","bytes":41943040}`)
		rep := parseReport(t, r.log)
		if rep.memMB != 128 || rep.maxMB < 40 || rep.maxMB > 128 {
			t.Errorf("after allocating 40 MB of 128: Memory Size %d, Max Memory Used %d MB", rep.memMB, rep.maxMB)
		}
		// Billed: the invocation and any init, rounded up to the ms.
		if ran := rep.durationMs + rep.initMs; rep.billedMs < 1 || float64(rep.billedMs) < ran || float64(rep.billedMs) > ran+1 {
			t.Errorf("Billed Duration %d ms for Duration %.2f ms and Init Duration %.2f ms", rep.billedMs, rep.durationMs, rep.initMs)
		}
	})
}

// tryInvoke invokes name through the SDK without failing the test, so it
// may run off the test goroutine.
func (ts *testServer) tryInvoke(name, payload string) (invokeResult, error) {
	out, err := ts.sdk().Invoke(context.Background(), &lambda.InvokeInput{
		FunctionName: aws.String(name), Payload: []byte(payload), LogType: types.LogTypeTail,
	})
	if err != nil {
		return invokeResult{}, err
	}
	r := invokeResult{payload: string(out.Payload), funcErr: aws.ToString(out.FunctionError)}
	if out.LogResult != nil {
		b, err := base64.StdEncoding.DecodeString(*out.LogResult)
		if err != nil {
			return r, fmt.Errorf("LogResult is not base64: %w", err)
		}
		r.log = string(b)
	}
	return r, nil
}

// invokeAll runs n invokes of name with payload at once and returns them.
func (ts *testServer) invokeAll(n int, name, payload string) []invokeResult {
	ts.t.Helper()
	results := make([]invokeResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = ts.tryInvoke(name, payload) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			ts.t.Fatalf("concurrent invoke %d of %s: %v", i, name, err)
		}
	}
	return results
}

func TestConcurrentInvokes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("conc")

	const n = 8
	cold := ts.invokeAll(n, "conc", `{"action":"sleep","ms":300}`)
	for i, r := range cold {
		if r.funcErr != "" || r.payload != `{"slept":"300"}` {
			t.Errorf("invoke %d: %s %s", i, r.funcErr, r.payload)
		}
		if !parseReport(t, r.log).cold {
			t.Errorf("invoke %d of %d overlapping ones reused an environment", i, n)
		}
	}
	if st := ts.Worker().Stats(); st.Environments != n || st.Idle != n {
		t.Errorf("after %d overlapping invokes: %+v, want %d environments, all idle", n, st, n)
	}

	// The same load again is served warm by the same environments.
	for i, r := range ts.invokeAll(n, "conc", `{"action":"sleep","ms":300}`) {
		if r.funcErr != "" || parseReport(t, r.log).cold {
			t.Errorf("warm invoke %d: %s %s cold=%v", i, r.funcErr, r.payload, parseReport(t, r.log).cold)
		}
	}
	if st := ts.Worker().Stats(); st.Environments != n {
		t.Errorf("after the warm round: %d environments, want %d", st.Environments, n)
	}
}

func TestConcurrentCreatesShareCode(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	// A zip no other function has: every create races to store it while
	// the others already read it to start their environments.
	zip := kitchenZipWith(t, zipEntry{name: "shared.txt", body: t.Name()})
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("shared-%d", i)
			_, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
				FunctionName: aws.String(name),
				Runtime:      types.RuntimeProvidedal2023,
				Handler:      aws.String("bootstrap"),
				Role:         aws.String("arn:aws:iam::000000000000:role/owl"),
				Code:         &types.FunctionCode{ZipFile: zip},
			})
			if err != nil {
				errs[i] = fmt.Errorf("create %s: %w", name, err)
				return
			}
			r, err := ts.tryInvoke(name, `{"action":"readdir","path":"/var/task"}`)
			if err != nil || r.funcErr != "" || !strings.Contains(r.payload, "shared.txt") {
				errs[i] = fmt.Errorf("invoke %s: %v %s %s", name, err, r.funcErr, r.payload)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkAccount(t, ts, n, int64(len(zip)))
}
