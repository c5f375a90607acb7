package server_test

// Versions and aliases: immutable releases, weighted traffic, and the
// errors that keep them safe, through aws-sdk-go-v2.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// withEnv sets the kitchensink's environment to V=v.
func withEnv(v string) func(*lambda.CreateFunctionInput) {
	return func(in *lambda.CreateFunctionInput) {
		in.Environment = &types.Environment{Variables: map[string]string{"VV": v}}
	}
}

// setEnv updates $LATEST's environment to V=v.
func (ts *testServer) setEnv(name, v string) *lambda.UpdateFunctionConfigurationOutput {
	ts.t.Helper()
	out, err := ts.sdk().UpdateFunctionConfiguration(context.Background(), &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String(name), Environment: &types.Environment{Variables: map[string]string{"VV": v}},
	})
	if err != nil {
		ts.t.Fatalf("UpdateFunctionConfiguration %s: %v", name, err)
	}
	return out
}

// ranV invokes name (qualified or not) and returns the V the code saw,
// the executed version and the whole environment.
func (ts *testServer) ranV(name string) (v, executed string, env map[string]string, log string) {
	ts.t.Helper()
	r := ts.invoke(name, `{"action":"env"}`)
	env = envOf(ts.t, r)
	return env["VV"], r.version, env, r.log
}

func (ts *testServer) publish(name string, mutate ...func(*lambda.PublishVersionInput)) *lambda.PublishVersionOutput {
	ts.t.Helper()
	in := &lambda.PublishVersionInput{FunctionName: aws.String(name)}
	for _, m := range mutate {
		m(in)
	}
	out, err := ts.sdk().PublishVersion(context.Background(), in)
	if err != nil {
		ts.t.Fatalf("PublishVersion %s: %v", name, err)
	}
	return out
}

func wantSDKError(t testing.TB, err error, status int, code string) {
	t.Helper()
	gotCode, gotStatus := sdkError(t, err)
	if gotCode != code || gotStatus != status {
		t.Errorf("got %d %s, want %d %s (%v)", gotStatus, gotCode, status, code, err)
	}
}

func TestVersionsAreImmutable(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:rel"

	created := ts.createKitchensink("rel", withEnv("one"), func(in *lambda.CreateFunctionInput) { in.Publish = true })
	if aws.ToString(created.Version) != "1" || aws.ToString(created.FunctionArn) != arn+":1" {
		t.Fatalf("CreateFunction with Publish answered Version %q ARN %q", aws.ToString(created.Version), aws.ToString(created.FunctionArn))
	}
	// Nothing changed: publishing again returns version 1.
	if again := ts.publish("rel"); aws.ToString(again.Version) != "1" || aws.ToString(again.RevisionId) != aws.ToString(created.RevisionId) {
		t.Errorf("publishing an unchanged function made version %q (revision %q, want %q)",
			aws.ToString(again.Version), aws.ToString(again.RevisionId), aws.ToString(created.RevisionId))
	}

	v, executed, env, log := ts.ranV("rel:1")
	if v != "one" || executed != "1" || env["AWS_LAMBDA_FUNCTION_VERSION"] != "1" || !strings.Contains(log, "Version: 1\n") {
		t.Errorf("rel:1 ran V=%q version %q (env version %q)\n%s", v, executed, env["AWS_LAMBDA_FUNCTION_VERSION"], log)
	}
	if !strings.Contains(env["AWS_LAMBDA_LOG_STREAM_NAME"], "/[1]") {
		t.Errorf("log stream of version 1: %q", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}

	// Updating $LATEST changes $LATEST only, and does not disturb version
	// 1's warm environment.
	updated := ts.setEnv("rel", "two")
	if v, executed, _, _ := ts.ranV("rel"); v != "two" || executed != "$LATEST" {
		t.Errorf("$LATEST after the update ran V=%q version %q", v, executed)
	}
	v, executed, _, log = ts.ranV("rel:1")
	if v != "one" || executed != "1" {
		t.Errorf("version 1 after $LATEST changed ran V=%q version %q", v, executed)
	}
	if strings.Contains(log, "Init Duration") {
		t.Errorf("updating $LATEST disturbed version 1's warm environment:\n%s", log)
	}
	if st := ts.Worker().Stats(); st.Environments != 2 {
		t.Errorf("%d environments, want 2 (version 1 and $LATEST never share one)", st.Environments)
	}

	// Preconditions.
	_, err := sdk.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("rel"), RevisionId: aws.String("stale")})
	wantSDKError(t, err, http.StatusPreconditionFailed, "PreconditionFailedException")
	_, err = sdk.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("rel"), CodeSha256: aws.String(codeSha256([]byte("other")))})
	wantSDKError(t, err, http.StatusBadRequest, "InvalidParameterValueException")
	v2 := ts.publish("rel", func(in *lambda.PublishVersionInput) {
		in.RevisionId, in.CodeSha256, in.Description = updated.RevisionId, aws.String(codeSha256(kitchenZip)), aws.String("second")
	})
	if aws.ToString(v2.Version) != "2" || aws.ToString(v2.Description) != "second" {
		t.Errorf("second publish: Version %q Description %q", aws.ToString(v2.Version), aws.ToString(v2.Description))
	}

	// UpdateFunctionCode with Publish makes version 3 with the new code;
	// version 1 keeps its code.
	newZip := kitchenZipWith(t, zipEntry{name: "extra.txt", body: "three"})
	v3, err := sdk.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("rel"), ZipFile: newZip, Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(v3.Version) != "3" || aws.ToString(v3.CodeSha256) != codeSha256(newZip) {
		t.Errorf("UpdateFunctionCode with Publish: Version %q CodeSha256 %q", aws.ToString(v3.Version), aws.ToString(v3.CodeSha256))
	}
	got1, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("rel"), Qualifier: aws.String("1")})
	if err != nil {
		t.Fatal(err)
	}
	if c := got1.Configuration; aws.ToString(c.Version) != "1" || aws.ToString(c.CodeSha256) != codeSha256(kitchenZip) ||
		c.Environment.Variables["VV"] != "one" || aws.ToString(c.FunctionArn) != arn+":1" {
		t.Errorf("GetFunction rel:1 = %s", jsonOf(c))
	}
	if loc := aws.ToString(got1.Code.Location); !strings.HasSuffix(loc, "?Qualifier=1") {
		t.Errorf("code location of version 1: %s", loc)
	} else if resp, body := ts.do("GET", strings.TrimPrefix(loc, ts.URL), nil, nil); resp.StatusCode != 200 || codeSha256(body) != codeSha256(kitchenZip) {
		t.Errorf("downloading version 1's code: %d, sha %s", resp.StatusCode, codeSha256(body))
	}

	// ListVersionsByFunction, paged.
	var versions []string
	var marker *string
	for pages := 0; ; pages++ {
		out, err := sdk.ListVersionsByFunction(ctx, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("rel"), MaxItems: aws.Int32(3), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range out.Versions {
			versions = append(versions, aws.ToString(c.Version)+"="+aws.ToString(c.FunctionArn)[len(arn):])
		}
		if marker = out.NextMarker; marker == nil || pages > 3 {
			break
		}
	}
	if got := strings.Join(versions, " "); got != "$LATEST=:$LATEST 1=:1 2=:2 3=:3" {
		t.Errorf("ListVersionsByFunction: %s", got)
	}
	all, err := sdk.ListFunctions(ctx, &lambda.ListFunctionsInput{FunctionVersion: types.FunctionVersionAll})
	if err != nil || len(all.Functions) != 4 {
		t.Errorf("ListFunctions ALL: %d functions, %v", len(all.Functions), err)
	}
	if some, err := sdk.ListFunctions(ctx, &lambda.ListFunctionsInput{}); err != nil || len(some.Functions) != 1 {
		t.Errorf("ListFunctions: %v", err)
	}

	// Unknown qualifiers, everywhere.
	for _, q := range []string{"9", "nope"} {
		_, err := sdk.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("rel"), Qualifier: aws.String(q)})
		wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
		_, err = sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("rel:" + q)})
		wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
	}
	_, err = sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("rel:1"), Timeout: aws.Int32(9)})
	wantSDKError(t, err, http.StatusBadRequest, "InvalidParameterValueException")
	_, err = sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("rel"), Qualifier: aws.String("$LATEST")})
	wantSDKError(t, err, http.StatusBadRequest, "InvalidParameterValueException")

	// Deleting one version; then the whole function with its versions.
	if _, err := sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("rel"), Qualifier: aws.String("2")}); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("rel:2")})
	wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
	if v, _, _, _ := ts.ranV("rel:1"); v != "one" {
		t.Errorf("version 1 after deleting version 2 ran V=%q", v)
	}
	// Version numbers are never reused.
	ts.setEnv("rel", "four")
	if v4 := ts.publish("rel"); aws.ToString(v4.Version) != "4" {
		t.Errorf("publish after deleting version 2 made version %q, want 4", aws.ToString(v4.Version))
	}
	if _, err := sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("rel")}); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("rel:1")})
	wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
	checkAccount(t, ts, 0, 0) // no version kept any code
	ts.createKitchensink("rel")
	if out := ts.publish("rel"); aws.ToString(out.Version) != "1" {
		t.Errorf("a re-created function's first version is %q", aws.ToString(out.Version))
	}
	if st := ts.Worker().Stats(); st.Environments != 0 {
		t.Errorf("%d environments left after the function was deleted", st.Environments)
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()
	const arn = "arn:aws:lambda:us-east-1:000000000000:function:app"
	ts.createKitchensink("app", withEnv("one"), func(in *lambda.CreateFunctionInput) { in.Publish = true })
	ts.setEnv("app", "two")
	ts.publish("app")

	live, err := sdk.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("app"), Name: aws.String("live"),
		FunctionVersion: aws.String("1"), Description: aws.String("production")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(live.AliasArn) != arn+":live" || aws.ToString(live.FunctionVersion) != "1" || live.RoutingConfig != nil {
		t.Errorf("CreateAlias answered %s", jsonOf(live))
	}
	if v, executed, _, log := ts.ranV("app:live"); v != "one" || executed != "1" || !strings.Contains(log, "Version: 1\n") {
		t.Errorf("app:live ran V=%q version %q\n%s", v, executed, log)
	}
	r := ts.invoke(arn+":live", `{"action":"context"}`)
	var c map[string]any
	_ = json.Unmarshal([]byte(r.payload), &c)
	if c["arn"] != arn+":live" || r.version != "1" {
		t.Errorf("through the alias ARN: invoked ARN %v, version %q", c["arn"], r.version)
	}
	if cfg, err := sdk.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("app"), Qualifier: aws.String("live")}); err != nil ||
		aws.ToString(cfg.Version) != "1" || aws.ToString(cfg.FunctionArn) != arn+":live" {
		t.Errorf("GetFunctionConfiguration app:live = %v, %v", cfg, err)
	}

	// Bad aliases.
	for _, tc := range []struct {
		name, version string
		weights       map[string]float64
		status        int
		code          string
	}{
		{"live", "1", nil, http.StatusConflict, "ResourceConflictException"},
		{"next", "9", nil, http.StatusNotFound, "ResourceNotFoundException"},
		{"123", "1", nil, http.StatusBadRequest, "ValidationException"},
		{"next", "$LATEST", map[string]float64{"1": 0.5}, http.StatusBadRequest, "InvalidParameterValueException"},
		{"next", "1", map[string]float64{"2": 1.5}, http.StatusBadRequest, "ValidationException"},
		{"next", "1", map[string]float64{"1": 0.5}, http.StatusBadRequest, "InvalidParameterValueException"},
		{"next", "1", map[string]float64{"7": 0.5}, http.StatusNotFound, "ResourceNotFoundException"},
	} {
		in := &lambda.CreateAliasInput{FunctionName: aws.String("app"), Name: aws.String(tc.name), FunctionVersion: aws.String(tc.version)}
		if tc.weights != nil {
			in.RoutingConfig = &types.AliasRoutingConfiguration{AdditionalVersionWeights: tc.weights}
		}
		_, err := sdk.CreateAlias(ctx, in)
		t.Run(fmt.Sprintf("%s->%s%v", tc.name, tc.version, tc.weights), func(t *testing.T) { wantSDKError(t, err, tc.status, tc.code) })
	}
	if out, err := sdk.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("app")}); err != nil || len(out.Aliases) != 1 {
		t.Errorf("after the bad creates: ListAliases = %v, %v", out, err)
	}

	// A version an alias uses cannot be deleted.
	_, err = sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("app"), Qualifier: aws.String("1")})
	wantSDKError(t, err, http.StatusConflict, "ResourceConflictException")

	// Update: stale revision refused; then shift to version 2 with 10 % on 1.
	_, err = sdk.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("app"), Name: aws.String("live"),
		FunctionVersion: aws.String("2"), RevisionId: aws.String("stale")})
	wantSDKError(t, err, http.StatusPreconditionFailed, "PreconditionFailedException")
	up, err := sdk.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("app"), Name: aws.String("live"),
		FunctionVersion: aws.String("2"), RevisionId: live.RevisionId,
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"1": 0.1}}})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(up.FunctionVersion) != "2" || up.RoutingConfig == nil || up.RoutingConfig.AdditionalVersionWeights["1"] != 0.1 ||
		aws.ToString(up.Description) != "production" {
		t.Errorf("UpdateAlias answered %s", jsonOf(up))
	}
	got, err := sdk.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("app"), Name: aws.String("live")})
	if err != nil || !equalJSON(got.RoutingConfig, up.RoutingConfig) || aws.ToString(got.RevisionId) != aws.ToString(up.RevisionId) {
		t.Errorf("GetAlias = %s, %v", jsonOf(got), err)
	}
	for _, q := range []struct {
		version string
		want    int
	}{{"1", 1}, {"2", 1}, {"$LATEST", 0}} {
		out, err := sdk.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String("app"), FunctionVersion: aws.String(q.version)})
		if err != nil || len(out.Aliases) != q.want {
			t.Errorf("ListAliases FunctionVersion=%s: %v, %v", q.version, out, err)
		}
	}
	_, err = sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("app"), Qualifier: aws.String("1")})
	wantSDKError(t, err, http.StatusConflict, "ResourceConflictException") // routed to

	// Remove the routing, delete the alias, then version 1 can go.
	if _, err := sdk.UpdateAlias(ctx, &lambda.UpdateAliasInput{FunctionName: aws.String("app"), Name: aws.String("live"),
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}}}); err != nil {
		t.Fatal(err)
	}
	if v, executed, _, _ := ts.ranV("app:live"); v != "two" || executed != "2" {
		t.Errorf("after the shift app:live ran V=%q version %q", v, executed)
	}
	if _, err := sdk.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String("app"), Name: aws.String("live")}); err != nil {
		t.Fatal(err)
	}
	_, err = sdk.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("app:live")})
	wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
	_, err = sdk.GetAlias(ctx, &lambda.GetAliasInput{FunctionName: aws.String("app"), Name: aws.String("live")})
	wantSDKError(t, err, http.StatusNotFound, "ResourceNotFoundException")
	if !strings.Contains(fmt.Sprint(err), "Cannot find alias arn: "+arn+":live") {
		t.Errorf("GetAlias of a deleted alias: %v", err)
	}
	if _, err := sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("app"), Qualifier: aws.String("1")}); err != nil {
		t.Errorf("deleting version 1 once no alias uses it: %v", err)
	}
}

// A weighted alias splits 1000 invocations by its weight, within a band
// that a correct router leaves with probability below 1e-6 (±5 standard
// deviations of the binomial count), and every invocation reports the
// version whose code actually ran.
func TestWeightedAliasSplitsTraffic(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	ts.createKitchensink("canary", withEnv("one"), func(in *lambda.CreateFunctionInput) { in.Publish = true })
	ts.setEnv("canary", "two")
	ts.publish("canary")
	const weight, n = 0.3, 1000
	if _, err := ts.sdk().CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("canary"), Name: aws.String("live"),
		FunctionVersion: aws.String("1"), RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": weight}}}); err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	want := map[string]string{"1": "one", "2": "two"}
	var failures []string
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				out, err := ts.sdk().Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("canary:live"),
					Payload: []byte(`{"action":"env"}`), LogType: types.LogTypeTail})
				mu.Lock()
				if err != nil {
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				var env []string
				_ = json.Unmarshal(out.Payload, &env)
				ver := aws.ToString(out.ExecutedVersion)
				log, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
				if !slices.Contains(env, "VV="+want[ver]) || !strings.Contains(string(log), "Version: "+ver+"\n") {
					failures = append(failures, fmt.Sprintf("executed version %q but the code had %v; log %q", ver, env, log))
				}
				counts[ver]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d invocations failed; first: %s", len(failures), n, failures[0])
	}
	mean, sd := n*weight, math.Sqrt(n*weight*(1-weight))
	lo, hi := int(math.Ceil(mean-5*sd)), int(math.Floor(mean+5*sd))
	if counts["2"] < lo || counts["2"] > hi || counts["1"]+counts["2"] != n {
		t.Errorf("version 2 ran %d of %d times (version 1: %d); want %d..%d for weight %.1f", counts["2"], n, counts["1"], lo, hi, weight)
	}
	t.Logf("weight %.1f: version 2 ran %d of %d invocations (band %d..%d)", weight, counts["2"], n, lo, hi)
}

// The canary rollout of the README through the owl CLI: publish, alias,
// shift 10 %, then 100 %.
func TestCanaryWithOwlCLI(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	build(t)
	owl := func(args ...string) (string, string, int) { return owlCLI(t, ts.URL, args...) }
	ts.createKitchensink("site", withEnv("one"))

	stdout, stderr, code := owl("publish", "site", "--description", "first")
	if code != 0 || !strings.HasPrefix(stdout, "site version 1 (code ") {
		t.Fatalf("owl publish: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if stdout, stderr, code = owl("alias", "set", "site", "live", "1"); code != 0 || stdout != "site:live -> version 1\n" {
		t.Fatalf("owl alias set: exit %d\n%s\n%s", code, stdout, stderr)
	}
	ts.setEnv("site", "two")
	if stdout, _, _ = owl("publish", "site"); !strings.HasPrefix(stdout, "site version 2 ") {
		t.Fatalf("second owl publish: %s", stdout)
	}
	stdout, stderr, code = owl("alias", "set", "site", "live", "1", "--weight", "2=0.1")
	if code != 0 || stdout != "site:live -> version 1 (90%), version 2 (10%)\n" {
		t.Errorf("owl alias set --weight: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = owl("versions", "site")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[1], "$LATEST ") ||
		!strings.Contains(lines[2], "live (90%)") || !strings.Contains(lines[2], "first") || !strings.Contains(lines[3], "live (10%)") {
		t.Errorf("owl versions: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if stdout, stderr, code = owl("invoke", "site:live"); code != 0 || stdout != "{\"message\":\"hello world\"}\n" {
		t.Errorf("owl invoke site:live: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if stdout, stderr, code = owl("alias", "set", "site", "live", "2"); code != 0 || stdout != "site:live -> version 2\n" {
		t.Errorf("owl alias set (100 %%): exit %d\n%s\n%s", code, stdout, stderr)
	}
	for i := 0; i < 5; i++ {
		if v, executed, _, _ := ts.ranV("site:live"); v != "two" || executed != "2" {
			t.Fatalf("after the full shift site:live ran V=%q version %q", v, executed)
		}
	}
	if stdout, _, code = owl("alias", "ls", "site"); code != 0 || !strings.Contains(stdout, "live   2 ") {
		t.Errorf("owl alias ls: exit %d\n%s", code, stdout)
	}

	// Mistakes get one clear line and change nothing.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"alias", "set", "site", "live", "2", "--weight", "nope"}, `--weight "nope": want VERSION=WEIGHT`},
		{[]string{"alias", "set", "site", "live", "9"}, "Function not found"},
		{[]string{"alias", "set", "site", "live", "2", "--weight", "1=2"}, "Member must have value between 0.0 and 1.0"},
		{[]string{"alias", "set", "nosuch", "live", "1"}, "nosuch"},
		{[]string{"publish", "nosuch"}, "nosuch"},
		{[]string{"versions"}, "missing function name"},
	} {
		stdout, stderr, code := owl(tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("owl %v: exit %d, stdout %q, stderr %q (want one line with %q)", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if v, executed, _, _ := ts.ranV("site:live"); v != "two" || executed != "2" {
		t.Errorf("after the failed commands site:live ran V=%q version %q", v, executed)
	}
	if stdout, stderr, code = owl("alias", "rm", "site", "live"); code != 0 || stdout != "deleted site:live\n" {
		t.Errorf("owl alias rm: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// The same lifecycle through the AWS CLI.
func TestVersionsWithAWSCLI(t *testing.T) {
	t.Parallel()
	cli := findAWSCLI(t)
	ts := startServer(t, "")
	cli.endpoint = ts.URL
	dir := t.TempDir()
	ts.createKitchensink("cli-rel", withEnv("one"))
	run := func(args ...string) map[string]any {
		t.Helper()
		var out map[string]any
		cli.runJSON(t, dir, &out, args...)
		return out
	}
	if out := run("publish-version", "--function-name", "cli-rel", "--description", "v1"); out["Version"] != "1" {
		t.Errorf("publish-version: %v", out)
	}
	ts.setEnv("cli-rel", "two")
	run("publish-version", "--function-name", "cli-rel")
	out := run("create-alias", "--function-name", "cli-rel", "--name", "live", "--function-version", "1",
		"--routing-config", "AdditionalVersionWeights={2=0.25}")
	if out["FunctionVersion"] != "1" || !strings.Contains(jsonOf(out["RoutingConfig"]), `"2":0.25`) {
		t.Errorf("create-alias: %v", out)
	}
	if out := run("list-versions-by-function", "--function-name", "cli-rel"); len(out["Versions"].([]any)) != 3 {
		t.Errorf("list-versions-by-function: %v", out)
	}
	run("update-alias", "--function-name", "cli-rel", "--name", "live", "--function-version", "2",
		"--routing-config", "AdditionalVersionWeights={}")
	out = run("invoke", "--function-name", "cli-rel", "--qualifier", "live", "--payload", `{"action":"env"}`, filepath.Join(dir, "out.json"))
	b, _ := os.ReadFile(filepath.Join(dir, "out.json"))
	if out["ExecutedVersion"] != "2" || !strings.Contains(string(b), `"VV=two"`) {
		t.Errorf("invoke --qualifier live: %v\n%s", out, b)
	}
	if out := run("get-alias", "--function-name", "cli-rel", "--name", "live"); out["FunctionVersion"] != "2" || out["RoutingConfig"] != nil {
		t.Errorf("get-alias after update: %v", out)
	}
	_, stderr, code := cli.run(t, dir, "delete-function", "--function-name", "cli-rel", "--qualifier", "2")
	if code == 0 || !strings.Contains(stderr, "ResourceConflictException") {
		t.Errorf("delete-function --qualifier 2 while the alias uses it: exit %d\n%s", code, stderr)
	}
	run("delete-alias", "--function-name", "cli-rel", "--name", "live")
	run("delete-function", "--function-name", "cli-rel", "--qualifier", "2")
	if out := run("list-versions-by-function", "--function-name", "cli-rel"); len(out["Versions"].([]any)) != 2 {
		t.Errorf("list-versions-by-function after deleting version 2: %v", out)
	}
}
