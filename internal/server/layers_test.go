package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/owl-project/owl/internal/runtimes"

	"github.com/owl-project/owl/internal/testkit"
)

func TestLayers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ctx := context.Background()
	sdk := ts.sdk()

	publish := func(t *testing.T, name string, zip []byte) *lambda.PublishLayerVersionOutput {
		t.Helper()
		out, err := sdk.PublishLayerVersion(ctx, &lambda.PublishLayerVersionInput{
			LayerName: aws.String(name), Content: &types.LayerVersionContentInput{ZipFile: zip},
			Description: aws.String("test layer"),
		})
		if err != nil {
			t.Fatalf("PublishLayerVersion %s: %v", name, err)
		}
		return out
	}

	// Two versions of a layer: the later one wins where they overlap.
	v1 := publish(t, "shared", makeZip(t,
		zipEntry{name: "python/greet.py", body: "WORD = 'old'\n"},
		zipEntry{name: "bootstrap", body: shellBootstrap("from-layer"), mode: 0o755}))
	v2 := publish(t, "shared", makeZip(t, zipEntry{name: "python/greet.py", body: "WORD = 'Hello from a layer'\n"}))
	if v1.Version != 1 || v2.Version != 2 || aws.ToString(v2.LayerVersionArn) != "arn:aws:lambda:us-east-1:000000000000:layer:shared:2" {
		t.Fatalf("versions %d, %d; ARN %s", v1.Version, v2.Version, aws.ToString(v2.LayerVersionArn))
	}
	if v2.Content == nil || aws.ToString(v2.Content.CodeSha256) == "" || !strings.HasPrefix(aws.ToString(v2.Content.Location), ts.URL) {
		t.Fatalf("content %+v", v2.Content)
	}
	// Content.Location serves the layer's zip back.
	resp, body := ts.do("GET", strings.TrimPrefix(aws.ToString(v2.Content.Location), ts.URL), nil, nil)
	if resp.StatusCode != 200 || codeSha256(body) != aws.ToString(v2.Content.CodeSha256) {
		t.Errorf("GET Content.Location: %d, %d bytes", resp.StatusCode, len(body))
	}

	t.Run("list and get", func(t *testing.T) {
		vs, err := sdk.ListLayerVersions(ctx, &lambda.ListLayerVersionsInput{LayerName: aws.String("shared")})
		if err != nil || len(vs.LayerVersions) != 2 || vs.LayerVersions[0].Version != 2 {
			t.Fatalf("ListLayerVersions: %v %+v", err, vs)
		}
		ls, err := sdk.ListLayers(ctx, &lambda.ListLayersInput{})
		if err != nil || len(ls.Layers) != 1 || ls.Layers[0].LatestMatchingVersion.Version != 2 {
			t.Fatalf("ListLayers: %v %+v", err, ls)
		}
		got, err := sdk.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("shared"), VersionNumber: aws.Int64(1)})
		if err != nil || aws.ToString(got.Content.CodeSha256) != aws.ToString(v1.Content.CodeSha256) {
			t.Fatalf("GetLayerVersion: %v", err)
		}
	})

	t.Run("python imports from /opt/python", func(t *testing.T) {
		i := slices.IndexFunc(runtimes.IDs(), func(id string) bool { return strings.HasPrefix(id, "python3") })
		if i < 0 {
			testkit.Skip(t, "no python3 interpreter on this machine")
		}
		ts := ts.as(t)
		_, err := sdk.CreateFunction(ctx, &lambda.CreateFunctionInput{
			FunctionName: aws.String("py-layered"), Runtime: types.Runtime(runtimes.IDs()[i]), Handler: aws.String("app.handler"),
			Role:   aws.String("arn:aws:iam::000000000000:role/owl"),
			Code:   &types.FunctionCode{ZipFile: makeZip(t, zipEntry{name: "app.py", body: "import greet\ndef handler(e, c):\n    return greet.WORD\n"})},
			Layers: []string{aws.ToString(v1.LayerVersionArn), aws.ToString(v2.LayerVersionArn)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.invoke("py-layered", `{}`); r.funcErr != "" || r.payload != `"Hello from a layer"` {
			t.Errorf("invoke: %s %s", r.funcErr, r.payload)
		}
		cfg, err := sdk.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("py-layered")})
		if err != nil || len(cfg.Layers) != 2 || aws.ToString(cfg.Layers[1].Arn) != aws.ToString(v2.LayerVersionArn) {
			t.Errorf("configuration layers: %v %+v", err, cfg)
		}
	})

	t.Run("custom runtime's bootstrap from /opt", func(t *testing.T) {
		if _, err := os.Stat("/usr/bin/curl"); err != nil {
			testkit.Skip(t, "the shell bootstrap needs /usr/bin/curl")
		}
		ts := ts.as(t)
		ts.createZip("opt-bootstrap", "provided.al2023", "bootstrap", makeZip(t, zipEntry{name: "README", body: "code without a bootstrap"}))
		_, err := sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("opt-bootstrap"), Layers: []string{aws.ToString(v1.LayerVersionArn)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.invoke("opt-bootstrap", `{}`); r.funcErr != "" || r.payload != `"from-layer"` {
			t.Errorf("invoke: %s %s", r.funcErr, r.payload)
		}
	})

	t.Run("bad layer lists", func(t *testing.T) {
		arn := aws.ToString(v2.LayerVersionArn)
		for name, layers := range map[string][]string{
			"six layers":      {arn, arn, arn, arn, arn, arn},
			"missing version": {"arn:aws:lambda:us-east-1:000000000000:layer:shared:9"},
			"not an ARN":      {"shared"},
		} {
			_, err := sdk.CreateFunction(ctx, &lambda.CreateFunctionInput{
				FunctionName: aws.String("bad-layers"), Runtime: types.RuntimeProvidedal2023, Handler: aws.String("bootstrap"),
				Role: aws.String("arn:aws:iam::000000000000:role/owl"), Code: &types.FunctionCode{ZipFile: kitchenZip}, Layers: layers,
			})
			var re *smithyhttp.ResponseError
			if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
				t.Errorf("%s: err = %v, want a 400", name, err)
			}
		}
		if _, err := sdk.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("bad-layers")}); err == nil {
			t.Errorf("a function with bad layers was created")
		}
	})

	t.Run("delete keeps users working", func(t *testing.T) {
		if _, err := os.Stat("/usr/bin/curl"); err != nil {
			testkit.Skip(t, "the shell bootstrap needs /usr/bin/curl")
		}
		if _, err := sdk.DeleteLayerVersion(ctx, &lambda.DeleteLayerVersionInput{LayerName: aws.String("shared"), VersionNumber: aws.Int64(1)}); err != nil {
			t.Fatal(err)
		}
		_, err := sdk.GetLayerVersion(ctx, &lambda.GetLayerVersionInput{LayerName: aws.String("shared"), VersionNumber: aws.Int64(1)})
		var nf *types.ResourceNotFoundException
		if !errors.As(err, &nf) {
			t.Errorf("GetLayerVersion after delete: %v", err)
		}
		// A new environment of a function using the deleted version still
		// gets it: its code is kept while a function references it.
		_, err = sdk.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{
			FunctionName: aws.String("opt-bootstrap"), Description: aws.String("force a new environment"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.as(t).invoke("opt-bootstrap", `{}`); r.funcErr != "" || r.payload != `"from-layer"` {
			t.Errorf("invoke after the layer version was deleted: %s %s", r.funcErr, r.payload)
		}
	})
}

// shellBootstrap is a curl-based custom runtime answering a fixed string.
func shellBootstrap(answer string) string {
	return `#!/bin/sh
api="http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime"
h=$(mktemp)
while true; do
  curl -sS -D "$h" -o /dev/null "$api/invocation/next"
  id=$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *\([^[:space:]]*\).*/\1/p' "$h")
  curl -sS -o /dev/null -X POST "$api/invocation/$id/response" -d '"` + answer + `"'
done
`
}
