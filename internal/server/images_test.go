package server_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/images"
	"github.com/owl-project/owl/internal/testkit"
	"github.com/owl-project/owl/internal/testkit/ocitest"
)

// ociArch is the host's OCI architecture.
var ociArch = images.Platform("").Architecture

// scratchImage is a FROM scratch image holding the kitchensink
// (aws-lambda-go) binary as its ENTRYPOINT, with an ENV and a WORKDIR.
func scratchImage(t testing.TB, env string) ocitest.Config {
	return ocitest.Config{Arch: ociArch, Entrypoint: []string{"/main"}, Env: []string{"IMAGE_VAR=" + env, "PATH=/usr/bin:/bin"}, WorkingDir: "/srv"}
}

// binaryLayer is a layer of the kitchensink binary at /main, shared by
// every scratch image of a test.
func binaryLayer(t testing.TB) ocitest.File {
	b, err := os.ReadFile(kitchenBin)
	if err != nil {
		t.Fatal(err)
	}
	return ocitest.File{Name: "main", Body: b, Mode: 0o755}
}

// hostShellFiles are the host's /bin/sh and the shared libraries it
// loads, at their paths, for an image with a shell like Lambda's base
// images.
func hostShellFiles(t testing.TB) []ocitest.File {
	t.Helper()
	sh, err := filepath.EvalSymlinks("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", sh).Output()
	if err != nil {
		testkit.Skipf(t, "ldd %s: %v", sh, err)
	}
	paths := map[string]string{"bin/sh": sh}
	for _, m := range regexp.MustCompile(`(/\S+\.so[.\d]*)`).FindAllString(string(out), -1) {
		paths[strings.TrimPrefix(m, "/")] = m
	}
	var files []ocitest.File
	dirs := map[string]bool{}
	for name, host := range paths {
		real, err := filepath.EvalSymlinks(host)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			t.Fatal(err)
		}
		for d := filepath.Dir(name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			files = append(files, ocitest.File{Name: d + "/", Type: tar.TypeDir})
		}
		files = append(files, ocitest.File{Name: name, Body: b, Mode: 0o755})
	}
	return files
}

// baseImageLayout is like a Lambda base image: /lambda-entrypoint.sh, a
// shell script, execs the runtime interface client (here the kitchensink
// binary at /var/runtime/bootstrap), the handler as CMD, WORKDIR
// /var/task (the image's config says so).
func baseImageLayout(t testing.TB) []ocitest.File {
	main := binaryLayer(t)
	main.Name = "var/runtime/bootstrap"
	files := append(hostShellFiles(t),
		ocitest.File{Name: "var/", Type: tar.TypeDir}, ocitest.File{Name: "var/runtime/", Type: tar.TypeDir},
		ocitest.File{Name: "var/task/", Type: tar.TypeDir},
		ocitest.File{Name: "var/task/app.txt", Body: []byte("task")},
		main,
		ocitest.File{Name: "lambda-entrypoint.sh", Mode: 0o755,
			Body: []byte("#!/bin/sh\nexport HANDLER_ARG=\"$1\"\nexec /var/runtime/bootstrap\n")})
	return files
}

// startImageServer starts a server that pulls from registry host over
// plain HTTP.
func startImageServer(t *testing.T, hosts ...string) *testServer {
	return startServer(t, "", func(c *config.Config) { c.InsecureRegistries = hosts })
}

func createImage(t testing.TB, ts *testServer, name, uri string, ic *types.ImageConfig) *lambda.CreateFunctionOutput {
	t.Helper()
	out, err := ts.sdk().CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name), PackageType: types.PackageTypeImage, Role: aws.String("arn:aws:iam::000000000000:role/owl"),
		Code: &types.FunctionCode{ImageUri: aws.String(uri)}, ImageConfig: ic,
	})
	if err != nil {
		t.Fatalf("CreateFunction %s (%s): %v", name, uri, err)
	}
	return out
}

// waitImage waits until name's image pull finished (State not Pending,
// LastUpdateStatus not InProgress) and returns GetFunction's answer.
func waitImage(t testing.TB, ts *testServer, name string) *lambda.GetFunctionOutput {
	t.Helper()
	var got *lambda.GetFunctionOutput
	eventually(t, 60*time.Second, func() error {
		var err error
		got, err = ts.sdk().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String(name)})
		if err != nil {
			return err
		}
		if c := got.Configuration; c.State == types.StatePending || c.LastUpdateStatus == types.LastUpdateStatusInProgress {
			return fmt.Errorf("%s: %s / %s", name, c.State, c.LastUpdateStatus)
		}
		return nil
	})
	return got
}

// invokeJSON invokes name (a qualifier after ':') with payload and
// decodes the function's answer into out; a function error fails t.
func invokeJSON(t testing.TB, ts *testServer, name, payload string, out any) {
	t.Helper()
	resp, body := ts.rawInvoke(name+"/invocations", payload, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" {
		t.Fatalf("invoke %s: %d %s %s", name, resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("invoke %s: %v: %s", name, err, body)
	}
}

// imageEnv is the kitchensink's environment in function name.
func imageEnv(t testing.TB, ts *testServer, name string) map[string]string {
	t.Helper()
	var kvs []string
	invokeJSON(t, ts, name, `{"action":"env"}`, &kvs)
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// TestImageFunction: image functions created through the Lambda API from a
// registry, run unchanged — an aws-lambda-go binary FROM scratch and a
// base-image layout with /lambda-entrypoint.sh — with the image's config
// and ImageConfig's overrides, a read-only root and a writable /tmp;
// UpdateFunctionCode, versions and aliases work as for zips, and layers
// are fetched once per digest.
func TestImageFunction(t *testing.T) {
	requireRoot(t)
	build(t)
	var blobs ocitest.BlobCounter
	host := ocitest.Registry(t, blobs.Wrap)
	bin := ocitest.Layer(t, binaryLayer(t))
	srv := ocitest.Layer(t, ocitest.File{Name: "srv/", Type: tar.TypeDir}, ocitest.File{Name: "srv/marker", Body: []byte("m")})
	v1 := ocitest.Push(t, host, "scratch:v1", ocitest.Image(t, scratchImage(t, "one"), bin, srv))
	v2 := ocitest.Push(t, host, "scratch:v2", ocitest.Image(t, scratchImage(t, "two"), bin, srv))
	base := ocitest.Push(t, host, "base:latest", ocitest.Image(t, ocitest.Config{Arch: ociArch,
		Entrypoint: []string{"/lambda-entrypoint.sh"}, Cmd: []string{"app.handler"}, Env: []string{"PATH=/bin"}, WorkingDir: "/var/task"},
		ocitest.Layer(t, baseImageLayout(t)...)))
	ts := startImageServer(t, host)
	ctx := context.Background()

	created := createImage(t, ts, "img-scratch", v1, nil)
	if created.State != types.StatePending || created.PackageType != types.PackageTypeImage {
		t.Errorf("CreateFunction answered State %s PackageType %s, want Pending Image", created.State, created.PackageType)
	}
	got := waitImage(t, ts, "img-scratch")
	if got.Configuration.State != types.StateActive || aws.ToString(got.Code.ImageUri) != v1 ||
		!strings.HasPrefix(aws.ToString(got.Code.ResolvedImageUri), host+"/scratch@sha256:") || aws.ToString(got.Code.RepositoryType) != "ECR" ||
		aws.ToString(got.Code.ResolvedImageUri) != host+"/scratch@sha256:"+aws.ToString(got.Configuration.CodeSha256) {
		t.Fatalf("GetFunction: State %s (%s) Code %s", got.Configuration.State, aws.ToString(got.Configuration.StateReason), jsonOf(got.Code))
	}

	t.Run("scratch", func(t *testing.T) {
		env := imageEnv(t, ts.as(t), "img-scratch")
		if env["IMAGE_VAR"] != "one" || env["AWS_LAMBDA_FUNCTION_NAME"] != "img-scratch" || env["PATH"] != "/usr/bin:/bin" ||
			!strings.HasPrefix(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:") {
			t.Errorf("environment: %v", env)
		}
		var names []string
		invokeJSON(t, ts.as(t), "img-scratch", `{"action":"readdir","path":"."}`, &names)
		if !slices.Contains(names, "marker") {
			t.Errorf("the working directory holds %v, want WORKDIR /srv's marker", names)
		}
		for path, want := range map[string]bool{"/main2": false, "/srv/x": false, "/tmp/x": true} {
			var w struct{ OK bool }
			invokeJSON(t, ts.as(t), "img-scratch", `{"action":"write","path":"`+path+`"}`, &w)
			if w.OK != want {
				t.Errorf("writing %s: ok %v, want %v (the image root is read-only, /tmp is not)", path, w.OK, want)
			}
		}
		var root, etc []string
		invokeJSON(t, ts.as(t), "img-scratch", `{"action":"readdir","path":"/"}`, &root)
		invokeJSON(t, ts.as(t), "img-scratch", `{"action":"readdir","path":"/etc"}`, &etc)
		if !slices.Contains(root, "main") || slices.Contains(root, "usr") || !slices.Contains(etc, "passwd") || slices.Contains(etc, "shadow") {
			t.Errorf("/ holds %v and /etc %v: want the image's root (no host /usr) with Owl's /etc files", root, etc)
		}
		var who struct{ UID int }
		invokeJSON(t, ts.as(t), "img-scratch", `{"action":"whoami"}`, &who)
		if who.UID == 0 {
			t.Error("the image function runs as root")
		}
	})

	t.Run("base image layout", func(t *testing.T) {
		createImage(t, ts.as(t), "img-base", base, nil)
		if c := waitImage(t, ts.as(t), "img-base").Configuration; c.State != types.StateActive {
			t.Fatalf("State %s: %s", c.State, aws.ToString(c.StateReason))
		}
		env := imageEnv(t, ts.as(t), "img-base")
		if env["HANDLER_ARG"] != "app.handler" || env["_HANDLER"] != "app.handler" {
			t.Errorf("the entrypoint script got handler %q (_HANDLER %q), want CMD's app.handler", env["HANDLER_ARG"], env["_HANDLER"])
		}
		var names []string
		invokeJSON(t, ts.as(t), "img-base", `{"action":"readdir","path":"."}`, &names)
		if !slices.Contains(names, "app.txt") {
			t.Errorf("working directory holds %v, want /var/task's app.txt", names)
		}
		// ImageConfig overrides CMD and WORKDIR.
		_, err := ts.sdk().UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("img-base"),
			ImageConfig: &types.ImageConfig{Command: []string{"other.handler"}, WorkingDirectory: aws.String("/var/runtime")}})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := ts.sdk().GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("img-base")})
		if err != nil || cfg.ImageConfigResponse == nil || cfg.ImageConfigResponse.ImageConfig == nil ||
			!slices.Equal(cfg.ImageConfigResponse.ImageConfig.Command, []string{"other.handler"}) {
			t.Errorf("ImageConfigResponse %s, %v", jsonOf(cfg), err)
		}
		if env := imageEnv(t, ts.as(t), "img-base"); env["HANDLER_ARG"] != "other.handler" {
			t.Errorf("after ImageConfig, handler %q, want other.handler", env["HANDLER_ARG"])
		}
		invokeJSON(t, ts.as(t), "img-base", `{"action":"readdir","path":"."}`, &names)
		if !slices.Contains(names, "bootstrap") {
			t.Errorf("working directory holds %v, want ImageConfig's /var/runtime", names)
		}
	})

	t.Run("aws cli", func(t *testing.T) {
		cli := findAWSCLI(t)
		cli.endpoint = ts.URL
		dir := t.TempDir()
		steps := [][]string{
			{"create-function", "--function-name", "img-cli", "--package-type", "Image", "--code", "ImageUri=" + v1,
				"--role", "arn:aws:iam::000000000000:role/owl"},
			{"wait", "function-active-v2", "--function-name", "img-cli"},
			{"update-function-code", "--function-name", "img-cli", "--image-uri", v2},
			{"wait", "function-updated-v2", "--function-name", "img-cli"},
			{"get-function", "--function-name", "img-cli"},
		}
		var stdout string
		for _, args := range steps {
			var stderr string
			var code int
			stdout, stderr, code = cli.run(t, dir, args...)
			if code != 0 {
				t.Fatalf("aws lambda %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
			}
		}
		var got struct {
			Configuration struct{ State, LastUpdateStatus, PackageType string }
			Code          struct{ ImageUri, ResolvedImageUri, RepositoryType string }
		}
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatal(err)
		}
		if got.Configuration.State != "Active" || got.Configuration.LastUpdateStatus != "Successful" || got.Configuration.PackageType != "Image" ||
			got.Code.ImageUri != v2 || got.Code.RepositoryType != "ECR" || !strings.Contains(got.Code.ResolvedImageUri, "@sha256:") {
			t.Errorf("aws lambda get-function printed %s", stdout)
		}
		if e := imageEnv(t, ts.as(t), "img-cli"); e["IMAGE_VAR"] != "two" {
			t.Errorf("IMAGE_VAR %q after the CLI's update, want two", e["IMAGE_VAR"])
		}
	})

	t.Run("update, versions and aliases", func(t *testing.T) {
		sdk := ts.sdk()
		v, err := sdk.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("img-scratch")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sdk.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String("img-scratch"), Name: aws.String("live"), FunctionVersion: v.Version}); err != nil {
			t.Fatal(err)
		}
		up, err := sdk.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("img-scratch"), ImageUri: aws.String(v2)})
		if err != nil {
			t.Fatal(err)
		}
		if up.LastUpdateStatus != types.LastUpdateStatusInProgress {
			t.Errorf("UpdateFunctionCode answered LastUpdateStatus %s, want InProgress", up.LastUpdateStatus)
		}
		got := waitImage(t, ts.as(t), "img-scratch")
		if got.Configuration.LastUpdateStatus != types.LastUpdateStatusSuccessful || aws.ToString(got.Code.ImageUri) != v2 {
			t.Fatalf("after the update: %s, code %s", got.Configuration.LastUpdateStatus, jsonOf(got.Code))
		}
		if e := imageEnv(t, ts.as(t), "img-scratch"); e["IMAGE_VAR"] != "two" {
			t.Errorf("$LATEST runs IMAGE_VAR %q, want the new image's two", e["IMAGE_VAR"])
		}
		for _, q := range []string{aws.ToString(v.Version), "live"} {
			if e := imageEnv(t, ts.as(t), "img-scratch:"+q); e["IMAGE_VAR"] != "one" {
				t.Errorf("%s runs IMAGE_VAR %q, want the published image's one", q, e["IMAGE_VAR"])
			}
		}
		// Publish with the update: the version is of the new image.
		pub, err := sdk.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("img-scratch"), ImageUri: aws.String(v1), Publish: true})
		if err != nil {
			t.Fatal(err)
		}
		if e := imageEnv(t, ts.as(t), "img-scratch:"+aws.ToString(pub.Version)); e["IMAGE_VAR"] != "one" {
			t.Errorf("version %s published with the update runs IMAGE_VAR %q, want one", aws.ToString(pub.Version), e["IMAGE_VAR"])
		}
		if n := blobs.Gets(t, bin); n != 1 {
			t.Errorf("the binary's layer, shared by both images, was downloaded %d times, want once", n)
		}
	})
}

// TestImageFunctionFailures: malformed requests are refused with Lambda's
// 4xx and store nothing; images that cannot be used leave the function
// Failed with Lambda's reason code (invoking it is a 409); an update to
// such an image leaves the previous one running; an entrypoint that does
// not exist is Runtime.InvalidEntrypoint; and nothing is left behind.
func TestImageFunctionFailures(t *testing.T) {
	requireRoot(t)
	build(t)
	host := ocitest.Registry(t, nil)
	denied := ocitest.Registry(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "denied", http.StatusUnauthorized)
		})
	})
	bin := ocitest.Layer(t, binaryLayer(t))
	srv := ocitest.Layer(t, ocitest.File{Name: "srv/", Type: tar.TypeDir})
	good := ocitest.Push(t, host, "good:v1", ocitest.Image(t, scratchImage(t, "good"), bin, srv))
	noWorkDir := ocitest.Push(t, host, "noworkdir:v1", ocitest.Image(t, scratchImage(t, "x"), bin))
	otherArch := "arm64"
	if ociArch == "arm64" {
		otherArch = "amd64"
	}
	wrongArch := ocitest.Push(t, host, "arch:v1", ocitest.Image(t, ocitest.Config{Arch: otherArch, Entrypoint: []string{"/main"}}, bin))
	device := ocitest.Push(t, host, "dev:v1", ocitest.Image(t, scratchImage(t, "x"), bin,
		ocitest.Layer(t, ocitest.File{Name: "dev/", Type: tar.TypeDir}, ocitest.File{Name: "dev/sda", Type: tar.TypeBlock})))
	noEntry := ocitest.Push(t, host, "noentry:v1", ocitest.Image(t, ocitest.Config{Arch: ociArch, Entrypoint: []string{"/nope"}}, bin))
	notOnPath := ocitest.Push(t, host, "notonpath:v1", ocitest.Image(t, ocitest.Config{Arch: ociArch, Entrypoint: []string{"nope"}}, bin))
	ts := startImageServer(t, host, denied)

	t.Run("refused requests", func(t *testing.T) {
		ts := ts.as(t)
		role := `"Role":"arn:aws:iam::000000000000:role/owl"`
		cases := []struct{ name, body, code, msg string }{
			{"malformed uri", `{"FunctionName":"bad1","PackageType":"Image",` + role + `,"Code":{"ImageUri":"Not A//Reference::"}}`, "InvalidParameterValueException", "~is not valid"},
			{"image and zip", `{"FunctionName":"bad2","PackageType":"Image",` + role + `,"Code":{"ImageUri":"` + good + `","ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}`, "InvalidParameterValueException", "~only one of ImageUri or ZipFile"},
			{"zip with image uri", `{"FunctionName":"bad3","Runtime":"provided.al2023","Handler":"x",` + role + `,"Code":{"ImageUri":"` + good + `"}}`, "InvalidParameterValueException", "~ImageUri needs PackageType Image"},
			{"image without uri", `{"FunctionName":"bad4","PackageType":"Image",` + role + `,"Code":{}}`, "InvalidParameterValueException", "~Code.ImageUri is required"},
			{"image with runtime", `{"FunctionName":"bad5","PackageType":"Image","Runtime":"provided.al2023",` + role + `,"Code":{"ImageUri":"` + good + `"}}`, "InvalidParameterValueException", "~Runtime and Handler are not supported"},
			{"unknown package type", `{"FunctionName":"bad6","PackageType":"Docker",` + role + `,"Code":{"ImageUri":"` + good + `"}}`, "ValidationException", "~Member must satisfy enum value set: [Image, Zip]"},
			{"zip with image config", `{"FunctionName":"bad7","Runtime":"provided.al2023","Handler":"x",` + role + `,"Code":{"ZipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},"ImageConfig":{"Command":["x"]}}`, "InvalidParameterValueException", "~ImageConfig is only for functions of PackageType Image"},
		}
		for i, c := range cases {
			resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", []byte(c.body), nil)
			status := http.StatusBadRequest
			t.Run(c.name, func(t *testing.T) {
				wantError(t, resp, body, status, c.code, c.msg)
				if resp, _ := ts.do(http.MethodGet, fmt.Sprintf("/2015-03-31/functions/bad%d", i+1), nil, nil); resp.StatusCode != http.StatusNotFound {
					t.Errorf("the refused function was stored: GetFunction %d", resp.StatusCode)
				}
			})
		}
	})

	t.Run("failed pulls", func(t *testing.T) {
		for _, c := range []struct{ name, uri, code, reason string }{
			{"img-missing", host + "/missing:v1", "InvalidImage", "does not exist"},
			{"img-denied", denied + "/app:v1", "ImageAccessDenied", "refused"},
			{"img-arch", wrongArch, "InvalidImage", "architecture"},
			{"img-device", device, "InvalidImage", "device"},
		} {
			createImage(t, ts.as(t), c.name, c.uri, nil)
			cfg := waitImage(t, ts.as(t), c.name).Configuration
			if cfg.State != types.StateFailed || string(cfg.StateReasonCode) != c.code || !strings.Contains(aws.ToString(cfg.StateReason), c.reason) {
				t.Errorf("%s: State %s %s %q, want Failed %s mentioning %q", c.name, cfg.State, cfg.StateReasonCode, aws.ToString(cfg.StateReason), c.code, c.reason)
			}
			resp, body := ts.as(t).rawInvoke(c.name+"/invocations", `{}`, nil)
			wantError(t, resp, body, http.StatusConflict, "ResourceConflictException", "~currently in the following state: Failed")
			_, err := ts.sdk().PublishVersion(context.Background(), &lambda.PublishVersionInput{FunctionName: aws.String(c.name)})
			if err == nil || !strings.Contains(err.Error(), "ResourceConflictException") {
				t.Errorf("publishing a Failed function: %v, want ResourceConflictException", err)
			}
		}
	})

	t.Run("update to a bad image keeps the previous one", func(t *testing.T) {
		createImage(t, ts.as(t), "img-keep", good, nil)
		waitImage(t, ts.as(t), "img-keep")
		if _, err := ts.sdk().UpdateFunctionCode(context.Background(), &lambda.UpdateFunctionCodeInput{
			FunctionName: aws.String("img-keep"), ImageUri: aws.String(wrongArch)}); err != nil {
			t.Fatal(err)
		}
		got := waitImage(t, ts.as(t), "img-keep")
		if c := got.Configuration; c.State != types.StateActive || c.LastUpdateStatus != types.LastUpdateStatusFailed ||
			string(c.LastUpdateStatusReasonCode) != "InvalidImage" {
			t.Errorf("after a failed update: State %s, LastUpdateStatus %s %s", c.State, c.LastUpdateStatus, c.LastUpdateStatusReasonCode)
		}
		if e := imageEnv(t, ts.as(t), "img-keep"); e["IMAGE_VAR"] != "good" {
			t.Errorf("IMAGE_VAR %q after a failed update, want the previous image's good", e["IMAGE_VAR"])
		}
		for what, in := range map[string]*lambda.UpdateFunctionCodeInput{
			"a zip":           {FunctionName: aws.String("img-keep"), ZipFile: kitchenZip},
			"a malformed uri": {FunctionName: aws.String("img-keep"), ImageUri: aws.String("Not A//Reference::")},
		} {
			_, err := ts.sdk().UpdateFunctionCode(context.Background(), in)
			if err == nil || !strings.Contains(err.Error(), "InvalidParameterValueException") {
				t.Errorf("%s for an image function: %v, want InvalidParameterValueException", what, err)
			}
		}
		got = waitImage(t, ts.as(t), "img-keep")
		if aws.ToString(got.Code.ImageUri) != wrongArch || got.Configuration.LastUpdateStatus != types.LastUpdateStatusFailed {
			t.Errorf("a refused update changed the function: %s %s", jsonOf(got.Code), got.Configuration.LastUpdateStatus)
		}
		if e := imageEnv(t, ts.as(t), "img-keep"); e["IMAGE_VAR"] != "good" {
			t.Errorf("IMAGE_VAR %q after refused updates, want good", e["IMAGE_VAR"])
		}
	})

	t.Run("entrypoint or working directory that does not exist", func(t *testing.T) {
		for _, c := range []struct{ name, uri, errType string }{
			{"img-noentry", noEntry, "Runtime.InvalidEntrypoint"},
			{"img-notonpath", notOnPath, "Runtime.InvalidEntrypoint"},
			{"img-noworkdir", noWorkDir, "Runtime.InvalidWorkingDirectory"},
		} {
			createImage(t, ts.as(t), c.name, c.uri, nil)
			if cfg := waitImage(t, ts.as(t), c.name).Configuration; cfg.State != types.StateActive {
				t.Fatalf("%s: %s %s", c.name, cfg.State, aws.ToString(cfg.StateReason))
			}
			resp, body := ts.as(t).rawInvoke(c.name+"/invocations", `{}`, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "Unhandled" || !strings.Contains(string(body), c.errType) {
				t.Errorf("%s: %d %q %s, want 200 Unhandled %s", c.name, resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body, c.errType)
			}
		}
	})

	dataDir := ts.dataDir
	ts.stop()
	checkNothingLeft(t, dataDir)
	ents, err := os.ReadDir(filepath.Join(dataDir, "images", "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), images.PartialMark) {
			t.Errorf("a partial root %s was left", e.Name())
		}
	}
	if len(ents) != 4 { // good, noentry, notonpath, noworkdir
		t.Errorf("%d unpacked roots, want the 4 usable images'", len(ents))
	}
}

// TestImagePullResumesAfterRestart: a server stopped while an image is
// being pulled stops the pull (nothing left running) and leaves the
// function Pending; the next server on the data dir pulls it again, and
// the function becomes Active.
func TestImagePullResumesAfterRestart(t *testing.T) {
	requireRoot(t)
	build(t)
	release := make(chan struct{})
	blocking := true
	var mu sync.Mutex
	host := ocitest.Registry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			block := blocking && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
			mu.Unlock()
			if block { // hold layer downloads until the server gives up
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	defer close(release)
	uri := ocitest.Push(t, host, "slow:v1", ocitest.Image(t, scratchImage(t, "slow"),
		ocitest.Layer(t, binaryLayer(t)), ocitest.Layer(t, ocitest.File{Name: "srv/", Type: tar.TypeDir})))
	dataDir := t.TempDir()
	cfg := func(c *config.Config) { c.InsecureRegistries = []string{host} }
	ts := startServer(t, dataDir, cfg)
	if out := createImage(t, ts, "img-slow", uri, nil); out.State != types.StatePending {
		t.Fatalf("State %s, want Pending", out.State)
	}
	ts.stop()
	checkNothingLeft(t, dataDir)

	mu.Lock()
	blocking = false
	mu.Unlock()
	ts = startServer(t, dataDir, cfg)
	if c := waitImage(t, ts, "img-slow").Configuration; c.State != types.StateActive {
		t.Fatalf("after the restart: State %s %s, want Active", c.State, aws.ToString(c.StateReason))
	}
	if e := imageEnv(t, ts, "img-slow"); e["IMAGE_VAR"] != "slow" {
		t.Errorf("IMAGE_VAR %q, want slow", e["IMAGE_VAR"])
	}
}
