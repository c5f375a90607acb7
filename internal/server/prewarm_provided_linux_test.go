package server_test

// Pre-warmed custom runtimes (issue 16): the first invocation of a
// provided.* function is served by a sandbox built ahead of time whose
// init waits for its command; specialised, it mounts the function's code
// and execs its bootstrap. To the function it must be a fresh start, and
// no two functions ever share one.

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/worker"
)

// helloGoZip is examples/hello-go as a custom runtime's bootstrap.
func helloGoZip(t testing.TB) []byte {
	t.Helper()
	bin, err := testkit.Build("../../examples/hello-go")
	if err != nil {
		t.Fatalf("building hello-go: %v", err)
	}
	zip, err := zipFiles(map[string]string{"bootstrap": bin})
	if err != nil {
		t.Fatal(err)
	}
	return zip
}

// servedBySpare reports the cgroup of function name's processes and
// whether it is a pre-warmed sandbox's.
func servedBySpare(t testing.TB, inst, name string) (string, bool) {
	t.Helper()
	all := sandboxProcessCgroups(inst)
	for pid := range functionProcesses(inst, name) {
		cg := all[pid].cgroup
		return cg, strings.HasPrefix(cg, "prewarm-")
	}
	t.Fatalf("no process of %s found", name)
	return "", false
}

// specialized waits until every spare is ready and returns how many
// pre-warmed environments were specialised so far.
func specialized(t *testing.T, w *worker.Worker, per int) int64 {
	t.Helper()
	waitPrewarmed(t, w, len(worker.PrewarmRuntimes())*per)
	return w.Stats().Specialized
}

// readdir is what a kitchensink function lists in dir.
func readdir(t testing.TB, ts *testServer, name, dir string) []string {
	t.Helper()
	r := ts.invoke(name, `{"action":"readdir","path":"`+dir+`"}`)
	var names []string
	if r.funcErr != "" || json.Unmarshal([]byte(r.payload), &names) != nil {
		t.Fatalf("readdir %s in %s: %+v", dir, name, r)
	}
	return names
}

func TestPrewarmedProvided(t *testing.T) {
	t.Parallel()
	requireNft(t)
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 1 })
	inst := instanceOf(t, ts.dataDir)
	w := ts.Worker()
	if !slices.Contains(worker.PrewarmRuntimes(), "provided") {
		t.Fatalf("custom runtimes are not pre-warmed: %v", worker.PrewarmRuntimes())
	}

	// The Go hello function, unmodified aws-lambda-go, with its greeting
	// from the environment.
	before := specialized(t, w, 1)
	ts.createKitchensink("pw-hello", func(in *lambda.CreateFunctionInput) {
		in.Code = &types.FunctionCode{ZipFile: helloGoZip(t)}
		in.Environment = &types.Environment{Variables: map[string]string{"GREETING": "Bonjour"}}
	})
	if r := ts.invoke("pw-hello", `{"name":"owl"}`); r.funcErr != "" || !strings.Contains(r.payload, `"message":"Bonjour, owl!"`) {
		t.Fatalf("hello-go: %s %s\n%s", r.funcErr, r.payload, r.log)
	}
	if got := w.Stats().Specialized; got != before+1 {
		t.Fatalf("Specialized = %d after hello-go's first invocation, want %d", got, before+1)
	}
	if cg, spare := servedBySpare(t, inst, "pw-hello"); !spare {
		t.Errorf("hello-go ran in cgroup %q, not a pre-warmed sandbox's", cg)
	}

	// Exactly the environment a fresh start gives the same function: a
	// server without pre-warming is the reference.
	zipA, err := zipFiles(map[string]string{"bootstrap": kitchenBin, "a-only.txt": writeTemp(t, "a's file")})
	if err != nil {
		t.Fatal(err)
	}
	fnEnv := map[string]string{"FOO": "a", "SECRET": "pwA", "TZ": "Europe/Paris", "LD_BIND_NOW": "1"}
	create := func(ts *testServer, name string, zip []byte, memory, tmp int32, env map[string]string) {
		ts.createKitchensink(name, func(in *lambda.CreateFunctionInput) {
			in.Runtime = types.RuntimeProvidedal2
			in.Code = &types.FunctionCode{ZipFile: zip}
			in.MemorySize = aws.Int32(memory)
			in.EphemeralStorage = &types.EphemeralStorage{Size: aws.Int32(tmp)}
			in.Environment = &types.Environment{Variables: env}
		})
	}
	before = specialized(t, w, 1)
	create(ts, "pw-a", zipA, 256, 600, fnEnv)
	envA := envOf(t, ts.invoke("pw-a", `{"action":"env"}`))
	if got := w.Stats().Specialized; got != before+1 {
		t.Fatalf("Specialized = %d after pw-a's first invocation, want %d", got, before+1)
	}
	cgA, spare := servedBySpare(t, inst, "pw-a")
	if !spare {
		t.Fatalf("pw-a ran in cgroup %q, not a pre-warmed sandbox's", cgA)
	}
	fresh := startServer(t, "", func(c *config.Config) { c.Prewarm = 0 })
	create(fresh.as(t), "pw-a", zipA, 256, 600, fnEnv)
	envFresh := envOf(t, fresh.as(t).invoke("pw-a", `{"action":"env"}`))
	keys := slices.Sorted(maps.Keys(envA))
	if want := slices.Sorted(maps.Keys(envFresh)); !slices.Equal(keys, want) {
		t.Errorf("a pre-warmed environment's variables:\n%v\nwant a fresh start's:\n%v", keys, want)
	}
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "AWS_ACCESS_KEY_ID"), strings.HasPrefix(k, "AWS_SECRET"), strings.HasPrefix(k, "AWS_SESSION"),
			k == "AWS_LAMBDA_LOG_STREAM_NAME", k == "_X_AMZN_TRACE_ID":
			continue // per environment, per function revision or per invocation
		}
		if envA[k] != envFresh[k] {
			t.Errorf("%s = %q in a pre-warmed environment, %q in a fresh one", k, envA[k], envFresh[k])
		}
	}
	for k, v := range fnEnv {
		if envA[k] != v {
			t.Errorf("%s = %q, want the function's %q", k, envA[k], v)
		}
	}
	// Identity, working directory and mounts, as a fresh start has them.
	var who, whoFresh map[string]any
	decode(t, ts.invoke("pw-a", `{"action":"whoami"}`), &who)
	decode(t, fresh.as(t).invoke("pw-a", `{"action":"whoami"}`), &whoFresh)
	if !maps.Equal(who, whoFresh) {
		t.Errorf("identity %v pre-warmed, %v fresh", who, whoFresh)
	}
	if got := readdir(t, ts, "pw-a", "."); !slices.Equal(got, []string{"a-only.txt", "bootstrap"}) {
		t.Errorf("the working directory holds %v, want the function's code", got)
	}
	if got := readdir(t, ts, "pw-a", "/var/task"); !slices.Equal(got, []string{"a-only.txt", "bootstrap"}) {
		t.Errorf("/var/task holds %v, want the function's code", got)
	}
	var tmp struct{ Bytes int64 }
	decode(t, ts.invoke("pw-a", `{"action":"statfs","path":"/tmp"}`), &tmp)
	if tmp.Bytes < 590<<20 || tmp.Bytes > 604<<20 {
		t.Errorf("/tmp has %d MB free, want the function's 600", tmp.Bytes>>20)
	}
	if got := memoryLimit(t, inst, cgA); got != 256<<20 {
		t.Errorf("memory limit of %s: %d, want %d", cgA, got, 256<<20)
	}
	if got := ifNames(ts.interfaces("pw-a")); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("interfaces of a function with egress: %v", got)
	}
	// A leaves a secret in /tmp; warm, it is the same environment.
	var wrote struct{ OK bool }
	if decode(t, ts.invoke("pw-a", `{"action":"write","path":"/tmp/secret-pwA"}`), &wrote); !wrote.OK {
		t.Fatal("pw-a could not write its /tmp")
	}
	if cg, _ := servedBySpare(t, inst, "pw-a"); cg != cgA {
		t.Errorf("pw-a's warm invocation ran in %s, not its environment %s", cg, cgA)
	}

	// Another function gets another pre-warmed sandbox, holding nothing
	// of the first: not its code, /tmp, processes or environment.
	before = specialized(t, w, 1)
	create(ts, "pw-b", hostileZip(t, nil), 128, 512, map[string]string{"FOO": "b"})
	var b struct {
		Tmp, Procs, Env, Task []string
		Read                  string
		EnvHasSecret          bool
	}
	decode(t, ts.invoke("pw-b", `{"action":"peek","secret":"pwA"}`), &b)
	if got := w.Stats().Specialized; got != before+1 {
		t.Fatalf("Specialized = %d after pw-b's first invocation, want %d", got, before+1)
	}
	if cgB, spare := servedBySpare(t, inst, "pw-b"); !spare || cgB == cgA {
		t.Errorf("pw-b ran in %q (pw-a in %q): want another pre-warmed sandbox", cgB, cgA)
	}
	if len(b.Tmp) != 0 || b.Read != enoent || b.EnvHasSecret || !slices.Contains(b.Env, "FOO=b") {
		t.Errorf("pw-b sees /tmp %v (%q), its environment %v: want nothing of pw-a", b.Tmp, b.Read, b.Env)
	}
	if !slices.Equal(b.Task, []string{"bootstrap"}) {
		t.Errorf("pw-b's /var/task: %v", b.Task)
	}
	for _, p := range b.Procs {
		if _, comm, _ := strings.Cut(p, ":"); comm != "bootstrap" {
			t.Errorf("pw-b sees process %s (all: %v)", p, b.Procs)
		}
	}
	if got := memoryLimit(t, inst, func() string { cg, _ := servedBySpare(t, inst, "pw-b"); return cg }()); got != 128<<20 {
		t.Errorf("pw-b's memory limit: %d, want %d", got, 128<<20)
	}

	// A function without the spares' network starts fresh.
	before = specialized(t, w, 1)
	if resp, body := ts.createWithNetwork("pw-none", "none"); resp.StatusCode != 201 {
		t.Fatalf("creating pw-none: %d %s", resp.StatusCode, body)
	}
	if got := ifNames(ts.interfaces("pw-none")); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("interfaces of a function without egress: %v", got)
	}
	if cg, spare := servedBySpare(t, inst, "pw-none"); spare || w.Stats().Specialized != before {
		t.Errorf("a function without egress ran in %s (specialized %d → %d): want a fresh sandbox", cg, before, w.Stats().Specialized)
	}

	// The bootstrap in a layer: /opt/bootstrap is exec'd, from the layer
	// attached read-only at /opt.
	layerZip, err := zipFiles(map[string]string{"bootstrap": kitchenBin})
	if err != nil {
		t.Fatal(err)
	}
	layer, err := ts.sdk().PublishLayerVersion(context.Background(), &lambda.PublishLayerVersionInput{
		LayerName: aws.String("pw-runtime"), Content: &types.LayerVersionContentInput{ZipFile: layerZip}})
	if err != nil {
		t.Fatal(err)
	}
	before = specialized(t, w, 1)
	ts.createKitchensink("pw-layered", func(in *lambda.CreateFunctionInput) {
		in.Code = &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "README", body: "x"})}
		in.Layers = []string{aws.ToString(layer.LayerVersionArn)}
	})
	if got := readdir(t, ts, "pw-layered", "/opt"); !slices.Equal(got, []string{"bootstrap"}) {
		t.Errorf("/opt holds %v, want the layer's bootstrap", got)
	}
	if got := w.Stats().Specialized; got != before+1 {
		t.Errorf("Specialized = %d after pw-layered's first invocation, want %d", got, before+1)
	}
	if got := readdir(t, ts, "pw-layered", "/var/task"); !slices.Equal(got, []string{"README"}) {
		t.Errorf("/var/task holds %v, want the function's code", got)
	}
	if r := ts.invoke("pw-layered", `{"action":"write","path":"/opt/x"}`); !strings.Contains(r.payload, erofs) {
		t.Errorf("writing /opt: %s, want %s", r.payload, erofs)
	}

	// No bootstrap: Runtime.InvalidEntrypoint, as from a fresh start, and
	// the spare is gone with it.
	before = specialized(t, w, 1)
	resp, body := ts.do("POST", "/2015-03-31/functions", createBody(t, "pw-noboot", withCode(makeZip(t, zipEntry{name: "README", body: "x"}))), nil)
	if resp.StatusCode != 201 {
		t.Fatalf("creating pw-noboot: %d %s", resp.StatusCode, body)
	}
	for range 2 {
		r := ts.invoke("pw-noboot", `{}`)
		if r.funcErr != "Unhandled" || r.errorObj["errorType"] != "Runtime.InvalidEntrypoint" {
			t.Errorf("no bootstrap: %s %s, want Runtime.InvalidEntrypoint", r.funcErr, r.payload)
		}
	}
	if got := w.Stats().Specialized; got < before+1 {
		t.Errorf("Specialized = %d after a function without bootstrap, want a spare used (%d)", got, before+1)
	}
	specialized(t, w, 1) // replenished: the failed spare did not stop pre-warming
	names := sandboxCgroupNames(t, inst)
	sort.Strings(names)
	for _, n := range names {
		if strings.HasPrefix(n, "pw-noboot") {
			t.Errorf("a sandbox of the function without bootstrap is left: %v", names)
		}
	}
}

// TestPrewarmedProvidedHostile runs the hostile probes against pre-warmed
// sandboxes: each probe's first environment is a specialised spare, and
// every escape is refused and every exhaustion contained as in a fresh one.
func TestPrewarmedProvidedHostile(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", func(c *config.Config) { c.Prewarm = 2 })
	hostileBinary(t)
	w := ts.Worker()
	for _, p := range []struct {
		name   string
		probe  func(*testing.T, *testServer)
		spares int64 // first environments, all of them spares
	}{
		{"escapes", hostileEscapes, 1},
		{"privileges", hostilePrivileges, 1},
		{"foreign syscall ABIs", hostileForeignABIs, 1},
		{"out of memory", hostileOOM, 1},
		{"fill tmp", hostileFillTmp, 1},
		{"isolation", hostileIsolation, 2},
	} {
		t.Run(p.name, func(t *testing.T) {
			before := specialized(t, w, 2)
			p.probe(t, ts.as(t))
			if got := w.Stats().Specialized - before; got < p.spares {
				t.Errorf("%d pre-warmed environments specialised for the probe, want at least %d", got, p.spares)
			}
		})
	}
}

// writeTemp writes content to a temporary file and returns its path.
func writeTemp(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
