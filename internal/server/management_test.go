package server_test

// Management API through aws-sdk-go-v2: create, get, list, update, delete
// and account settings, each checked against what real Lambda answers.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// codeSha256 is Lambda's CodeSha256 of a zip: base64 of its sha256.
func codeSha256(zip []byte) string {
	sum := sha256.Sum256(zip)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// sdkError returns the Lambda error code and HTTP status of an SDK error.
func sdkError(t testing.TB, err error) (string, int) {
	t.Helper()
	if err == nil {
		t.Fatalf("the call succeeded, want an error")
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("not a service error: %v", err)
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return ae.ErrorCode(), status
}

var (
	uuidRe         = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	lastModifiedRe = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$`)
)

func TestManagement(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()

	// Created out of order: listings must come back sorted.
	names := []string{"mgmt-c", "mgmt-a", "mgmt-e", "mgmt-b", "mgmt-d"}
	created := map[string]*lambda.CreateFunctionOutput{}
	for _, n := range names {
		created[n] = ts.createKitchensink(n)
	}

	t.Run("CreateDefaults", func(t *testing.T) {
		c := created["mgmt-c"]
		checks := []struct {
			field     string
			got, want any
		}{
			{"FunctionName", aws.ToString(c.FunctionName), "mgmt-c"},
			{"FunctionArn", aws.ToString(c.FunctionArn), "arn:aws:lambda:us-east-1:000000000000:function:mgmt-c"},
			{"Runtime", c.Runtime, types.RuntimeProvidedal2023},
			{"Handler", aws.ToString(c.Handler), "bootstrap"},
			{"Role", aws.ToString(c.Role), "arn:aws:iam::000000000000:role/owl"},
			{"MemorySize", aws.ToInt32(c.MemorySize), int32(128)},
			{"Timeout", aws.ToInt32(c.Timeout), int32(3)},
			{"EphemeralStorage", c.EphemeralStorage != nil && aws.ToInt32(c.EphemeralStorage.Size) == 512, true},
			{"PackageType", c.PackageType, types.PackageTypeZip},
			{"Architectures", c.Architectures, []types.Architecture{types.ArchitectureX8664}},
			{"State", c.State, types.StateActive},
			{"Version", aws.ToString(c.Version), "$LATEST"},
			{"Description", aws.ToString(c.Description), ""},
			{"CodeSha256", aws.ToString(c.CodeSha256), codeSha256(kitchenZip)},
			{"CodeSize", c.CodeSize, int64(len(kitchenZip))},
			{"RevisionId is a UUID", uuidRe.MatchString(aws.ToString(c.RevisionId)), true},
			{"LastModified format", lastModifiedRe.MatchString(aws.ToString(c.LastModified)), true},
			{"Environment", c.Environment == nil, true},
			{"TracingConfig", c.TracingConfig != nil && c.TracingConfig.Mode == types.TracingModePassThrough, true},
		}
		for _, c := range checks {
			if !equalJSON(c.got, c.want) {
				t.Errorf("%s = %v, want %v", c.field, c.got, c.want)
			}
		}
		if created["mgmt-a"].RevisionId == created["mgmt-c"].RevisionId {
			t.Errorf("two functions share RevisionId %s", aws.ToString(c.RevisionId))
		}
	})

	t.Run("Get", func(t *testing.T) {
		c := created["mgmt-c"]
		got, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("mgmt-c")})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := sdk.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("mgmt-c")})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*types.FunctionConfiguration{got.Configuration, configOf(cfg)} {
			if aws.ToString(g.CodeSha256) != aws.ToString(c.CodeSha256) || aws.ToString(g.RevisionId) != aws.ToString(c.RevisionId) ||
				aws.ToString(g.LastModified) != aws.ToString(c.LastModified) || aws.ToInt32(g.MemorySize) != 128 ||
				g.State != types.StateActive || g.LastUpdateStatus != types.LastUpdateStatusSuccessful {
				t.Errorf("Get answered %s, created %s", jsonOf(g), jsonOf(c))
			}
		}
		if got.Code == nil || aws.ToString(got.Code.RepositoryType) != "S3" {
			t.Fatalf("Code = %s", jsonOf(got.Code))
		}
		loc := aws.ToString(got.Code.Location)
		path, ok := strings.CutPrefix(loc, ts.URL)
		if !ok {
			t.Fatalf("Code.Location %q is not on the server %s", loc, ts.URL)
		}
		resp, body := ts.as(t).do(http.MethodGet, path, nil, nil)
		if resp.StatusCode != http.StatusOK || codeSha256(body) != codeSha256(kitchenZip) {
			t.Errorf("GET Code.Location: %d, %d bytes, want the uploaded zip (%d bytes)", resp.StatusCode, len(body), len(kitchenZip))
		}
	})

	t.Run("ListPaging", func(t *testing.T) {
		p := lambda.NewListFunctionsPaginator(sdk, &lambda.ListFunctionsInput{MaxItems: aws.Int32(2)})
		var got []string
		var sizes []int
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page.Functions))
			for _, f := range page.Functions {
				got = append(got, aws.ToString(f.FunctionName))
			}
			if len(sizes) > 10 {
				t.Fatalf("paging does not end: %v", got)
			}
		}
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(got, want) {
			t.Errorf("listed %v, want each of %v once, in order", got, want)
		}
		if !slices.Equal(sizes, []int{2, 2, 1}) {
			t.Errorf("page sizes %v, want [2 2 1]", sizes)
		}
	})

	t.Run("UpdateConfiguration", func(t *testing.T) {
		ts := ts.as(t)
		if r := ts.invoke("mgmt-a", `{}`); r.funcErr != "" {
			t.Fatalf("first invoke: %s", r.payload)
		}
		up, err := sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName:     aws.String("mgmt-a"),
			MemorySize:       aws.Int32(256),
			Timeout:          aws.Int32(10),
			Description:      aws.String("updated by the test"),
			Environment:      &types.Environment{Variables: map[string]string{"GREETING": "hi"}},
			EphemeralStorage: &types.EphemeralStorage{Size: aws.Int32(600)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(up.MemorySize) != 256 || aws.ToInt32(up.Timeout) != 10 || aws.ToString(up.Description) != "updated by the test" ||
			up.Environment == nil || up.Environment.Variables["GREETING"] != "hi" || aws.ToInt32(up.EphemeralStorage.Size) != 600 {
			t.Errorf("update answered %s", jsonOf(up))
		}
		if aws.ToString(up.RevisionId) == aws.ToString(created["mgmt-a"].RevisionId) || !uuidRe.MatchString(aws.ToString(up.RevisionId)) {
			t.Errorf("RevisionId after update = %q (before %q)", aws.ToString(up.RevisionId), aws.ToString(created["mgmt-a"].RevisionId))
		}
		if aws.ToString(up.CodeSha256) != codeSha256(kitchenZip) {
			t.Errorf("a configuration update changed CodeSha256 to %s", aws.ToString(up.CodeSha256))
		}

		// The next invoke runs in a new environment with the new settings.
		r := ts.invoke("mgmt-a", `{"action":"env"}`)
		env := envOf(t, r)
		if env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] != "256" || env["GREETING"] != "hi" {
			t.Errorf("environment after update: memory %q, GREETING %q", env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], env["GREETING"])
		}
		if !strings.Contains(r.log, "\tInit Duration: ") || !strings.Contains(r.log, "\tMemory Size: 256 MB\t") {
			t.Errorf("the invoke after an update did not start a new 256 MB environment:\n%s", r.log)
		}
		var ctxOut struct{ DeadlineInMs int64 }
		if err := json.Unmarshal([]byte(ts.invoke("mgmt-a", `{"action":"context"}`).payload), &ctxOut); err != nil {
			t.Fatal(err)
		}
		if ctxOut.DeadlineInMs < 5000 || ctxOut.DeadlineInMs > 10000 {
			t.Errorf("deadline %d ms away, want the new 10 s timeout", ctxOut.DeadlineInMs)
		}
		if got := tmpSizeMB(t, ts, "mgmt-a"); got != 600 {
			t.Errorf("/tmp is %d MB, want the new EphemeralStorage 600", got)
		}
		// The old environment was retired: only the new one is left.
		ts.waitEnvironments(1, "once the old one retired")
	})

	newZip := kitchenZipWith(t, zipEntry{name: "version.txt", body: "2"})
	t.Run("UpdateCode", func(t *testing.T) {
		ts := ts.as(t)
		if r := ts.invoke("mgmt-b", `{}`); r.funcErr != "" {
			t.Fatalf("first invoke: %s", r.payload)
		}
		up, err := sdk.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("mgmt-b"), ZipFile: newZip})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(up.CodeSha256) != codeSha256(newZip) || aws.ToString(up.CodeSha256) == codeSha256(kitchenZip) || up.CodeSize != int64(len(newZip)) {
			t.Errorf("UpdateFunctionCode answered CodeSha256 %s size %d, want %s size %d",
				aws.ToString(up.CodeSha256), up.CodeSize, codeSha256(newZip), len(newZip))
		}
		if aws.ToString(up.RevisionId) == aws.ToString(created["mgmt-b"].RevisionId) {
			t.Errorf("RevisionId unchanged by a code update")
		}
		r := ts.invoke("mgmt-b", `{"action":"readdir","path":"/var/task"}`)
		if !strings.Contains(r.payload, `"version.txt"`) {
			t.Errorf("the invoke after UpdateFunctionCode does not see the new code: %s", r.payload)
		}
		if !strings.Contains(r.log, "\tInit Duration: ") {
			t.Errorf("the invoke after a code update reused an old environment:\n%s", r.log)
		}
		got, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("mgmt-b")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(got.Configuration.CodeSha256) != codeSha256(newZip) {
			t.Errorf("GetFunction after the code update: CodeSha256 %s", aws.ToString(got.Configuration.CodeSha256))
		}
	})

	t.Run("RevisionMismatch", func(t *testing.T) {
		before, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("mgmt-e")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("mgmt-e"), MemorySize: aws.Int32(512), RevisionId: aws.String("00000000-0000-4000-8000-000000000000"),
		})
		if code, status := sdkError(t, err); code != "PreconditionFailedException" || status != http.StatusPreconditionFailed {
			t.Errorf("stale RevisionId on UpdateFunctionConfiguration: %s %d, want PreconditionFailedException 412", code, status)
		}
		var pf *types.PreconditionFailedException
		if !errors.As(err, &pf) || !strings.HasPrefix(pf.ErrorMessage(), "The Revision Id provided does not match the latest Revision Id.") {
			t.Errorf("error %v is not the SDK's PreconditionFailedException with Lambda's message", err)
		}
		_, err = sdk.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String("mgmt-e"), ZipFile: newZip, RevisionId: aws.String("00000000-0000-4000-8000-000000000000"),
		})
		if code, status := sdkError(t, err); code != "PreconditionFailedException" || status != http.StatusPreconditionFailed {
			t.Errorf("stale RevisionId on UpdateFunctionCode: %s %d", code, status)
		}
		after, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("mgmt-e")})
		if err != nil {
			t.Fatal(err)
		}
		if jsonOf(after.Configuration) != jsonOf(before.Configuration) {
			t.Errorf("a refused update changed the function:\nbefore %s\nafter  %s", jsonOf(before.Configuration), jsonOf(after.Configuration))
		}
		// The current RevisionId is accepted.
		up, err := sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("mgmt-e"), MemorySize: aws.Int32(512), RevisionId: before.Configuration.RevisionId,
		})
		if err != nil || aws.ToInt32(up.MemorySize) != 512 {
			t.Errorf("update with the current RevisionId: %v", err)
		}
	})

	t.Run("AccountSettings", func(t *testing.T) {
		// Code is stored once per distinct zip: four functions share
		// kitchenZip, mgmt-b has newZip.
		checkAccount(t, ts, len(names), int64(len(kitchenZip)+len(newZip)))
	})

	t.Run("Delete", func(t *testing.T) {
		ts := ts.as(t)
		for _, name := range []string{"mgmt-d", "mgmt-b"} {
			resp, body := ts.do(http.MethodDelete, "/2015-03-31/functions/"+name, nil, nil)
			if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
				t.Errorf("DeleteFunction %s: %d %q, want 204 and no body", name, resp.StatusCode, body)
			}
			notFound := "Function not found: arn:aws:lambda:us-east-1:000000000000:function:" + name
			resp, body = ts.do(http.MethodGet, "/2015-03-31/functions/"+name, nil, nil)
			wantError(t, resp, body, http.StatusNotFound, "ResourceNotFoundException", notFound)
			resp, body = ts.do(http.MethodDelete, "/2015-03-31/functions/"+name, nil, nil)
			wantError(t, resp, body, http.StatusNotFound, "ResourceNotFoundException", notFound)
		}
		_, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("mgmt-d")})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("SDK GetFunction of a deleted function: %v, want ResourceNotFoundException", err)
		}
		_, err = sdk.DeleteFunction(ctx, &lambda.DeleteFunctionInput{FunctionName: aws.String("mgmt-d")})
		if !errors.As(err, &nf) {
			t.Errorf("SDK DeleteFunction twice: %v, want ResourceNotFoundException", err)
		}
		// mgmt-b was newZip's only user: its code is gone too.
		checkAccount(t, ts, len(names)-2, int64(len(kitchenZip)))
	})
}

func checkAccount(t *testing.T, ts *testServer, functions int, codeSize int64) {
	t.Helper()
	out, err := ts.sdk().GetAccountSettings(context.Background(), &lambda.GetAccountSettingsInput{})
	if err != nil {
		t.Fatal(err)
	}
	if out.AccountUsage == nil || out.AccountUsage.FunctionCount != int64(functions) || out.AccountUsage.TotalCodeSize != codeSize {
		t.Errorf("AccountUsage = %s, want FunctionCount %d, TotalCodeSize %d", jsonOf(out.AccountUsage), functions, codeSize)
	}
	if out.AccountLimit == nil || out.AccountLimit.CodeSizeUnzipped != 262144000 || out.AccountLimit.CodeSizeZipped != 52428800 ||
		out.AccountLimit.ConcurrentExecutions != 1000 {
		t.Errorf("AccountLimit = %s", jsonOf(out.AccountLimit))
	}
}

// configOf converts GetFunctionConfiguration's output to the shared type.
func configOf(out *lambda.GetFunctionConfigurationOutput) *types.FunctionConfiguration {
	var c types.FunctionConfiguration
	b, _ := json.Marshal(out)
	_ = json.Unmarshal(b, &c)
	return &c
}

// envOf decodes the kitchensink "env" action's answer.
func envOf(t testing.TB, r invokeResult) map[string]string {
	t.Helper()
	var list []string
	if err := json.Unmarshal([]byte(r.payload), &list); err != nil || r.funcErr != "" {
		t.Fatalf("env action answered %s (%s): %v", r.payload, r.funcErr, err)
	}
	env := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// tmpSizeMB is the size of /tmp as the function sees it: what it can write.
func tmpSizeMB(t testing.TB, ts *testServer, name string) int64 {
	t.Helper()
	r := ts.invoke(name, `{"action":"statfs","path":"/tmp"}`)
	var out struct{ Bytes int64 }
	if err := json.Unmarshal([]byte(r.payload), &out); err != nil || r.funcErr != "" {
		t.Fatalf("statfs /tmp: %s: %v", r.payload, err)
	}
	return out.Bytes >> 20
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func equalJSON(a, b any) bool { return jsonOf(a) == jsonOf(b) }
