package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// TestTags: a function's tags through the AWS CLI — given at
// CreateFunction, added and replaced by tag-resource, removed by
// untag-resource, read by list-tags and in get-function's answer (of any
// version), kept across a restart — and Lambda's limits refused with
// Lambda's errors, leaving the tags as they were.
func TestTags(t *testing.T) {
	t.Parallel()
	cli := findAWSCLI(t)
	ts := startServer(t, "")
	cli.endpoint = ts.URL
	ctx := context.Background()
	ts.createKitchensink("tagged", func(in *lambda.CreateFunctionInput) {
		in.Tags = map[string]string{"team": "owl", "empty": ""}
	})
	arn := "arn:aws:lambda:us-east-1:000000000000:function:tagged"
	if out, err := ts.sdk().GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("tagged")}); err != nil {
		t.Fatal(err)
	} else {
		arn = aws.ToString(out.Configuration.FunctionArn)
	}
	dir := t.TempDir()
	run := func(t *testing.T, args ...string) string {
		t.Helper()
		stdout, stderr, code := cli.run(t, dir, args...)
		if code != 0 {
			t.Fatalf("aws lambda %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	listTags := func(t *testing.T) map[string]string {
		t.Helper()
		var out struct{ Tags map[string]string }
		if err := json.Unmarshal([]byte(run(t, "list-tags", "--resource", arn)), &out); err != nil {
			t.Fatal(err)
		}
		return out.Tags
	}
	wantTags := func(t *testing.T, want map[string]string) {
		t.Helper()
		if got := listTags(t); !maps.Equal(got, want) {
			t.Fatalf("list-tags: %v, want %v", got, want)
		}
		var fn struct{ Tags map[string]string }
		if err := json.Unmarshal([]byte(run(t, "get-function", "--function-name", "tagged")), &fn); err != nil || !maps.Equal(fn.Tags, want) && len(want) > 0 {
			t.Fatalf("get-function Tags: %v (%v), want %v", fn.Tags, err, want)
		}
	}

	t.Run("create, tag, untag", func(t *testing.T) {
		wantTags(t, map[string]string{"team": "owl", "empty": ""})
		run(t, "tag-resource", "--resource", arn, "--tags", "team=hoot,env=test")
		wantTags(t, map[string]string{"team": "hoot", "empty": "", "env": "test"})
		run(t, "untag-resource", "--resource", arn, "--tag-keys", "empty", "absent")
		wantTags(t, map[string]string{"team": "hoot", "env": "test"})
		// A published version answers with the function's tags.
		run(t, "publish-version", "--function-name", "tagged")
		run(t, "tag-resource", "--resource", arn, "--tags", "after=publish")
		var fn struct{ Tags map[string]string }
		if err := json.Unmarshal([]byte(run(t, "get-function", "--function-name", "tagged", "--qualifier", "1")), &fn); err != nil || fn.Tags["after"] != "publish" {
			t.Fatalf("get-function of version 1: Tags %v (%v)", fn.Tags, err)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		before := listTags(t)
		many := make([]string, 0, 50)
		for i := range 50 {
			many = append(many, fmt.Sprintf("k%d=v", i))
		}
		for _, c := range []struct {
			args []string
			code string
		}{
			{[]string{"tag-resource", "--resource", arn, "--tags", "aws:owner=me"}, "InvalidParameterValueException"},
			{[]string{"tag-resource", "--resource", arn, "--tags", "AWS:Owner=me"}, "InvalidParameterValueException"},
			{[]string{"tag-resource", "--resource", arn, "--tags", strings.Repeat("k", 129) + "=v"}, "InvalidParameterValueException"},
			{[]string{"tag-resource", "--resource", arn, "--tags", "long=" + strings.Repeat("v", 257)}, "InvalidParameterValueException"},
			// 50 new keys on top of the three it has.
			{[]string{"tag-resource", "--resource", arn, "--tags", strings.Join(many, ",")}, "InvalidParameterValueException"},
			{[]string{"tag-resource", "--resource", arn + ":1", "--tags", "a=b"}, "InvalidParameterValueException"},
			{[]string{"tag-resource", "--resource", strings.Replace(arn, "tagged", "missing", 1), "--tags", "a=b"}, "ResourceNotFoundException"},
			{[]string{"tag-resource", "--resource", "tagged", "--tags", "a=b"}, "ValidationException"},
			{[]string{"untag-resource", "--resource", arn, "--tag-keys", "aws:owner"}, "InvalidParameterValueException"},
			{[]string{"list-tags", "--resource", strings.Replace(arn, "tagged", "missing", 1)}, "ResourceNotFoundException"},
		} {
			_, stderr, code := cli.run(t, dir, c.args...)
			if code == 0 || !strings.Contains(stderr, "("+c.code+")") {
				t.Errorf("aws lambda %.80s: exit %d, want %s\n%s", strings.Join(c.args, " "), code, c.code, stderr)
			}
		}
		if got := listTags(t); !maps.Equal(got, before) {
			t.Fatalf("refused requests changed the tags: %v, was %v", got, before)
		}
		// CreateFunction checks its Tags too, and creates nothing when refused.
		zipPath := filepath.Join(dir, "fn.zip")
		if err := os.WriteFile(zipPath, kitchenZip, 0o644); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := cli.run(t, dir, "create-function", "--function-name", "bad-tags", "--runtime", "provided.al2023",
			"--handler", "bootstrap", "--role", "arn:aws:iam::000000000000:role/owl", "--zip-file", "fileb://"+zipPath,
			"--tags", "aws:x=1")
		if code == 0 || !strings.Contains(stderr, "(InvalidParameterValueException)") {
			t.Errorf("create-function with an aws: tag: exit %d\n%s", code, stderr)
		}
		if _, _, code := cli.run(t, dir, "get-function", "--function-name", "bad-tags"); code == 0 {
			t.Errorf("the refused create-function created bad-tags")
		}
	})

	t.Run("kept across a restart", func(t *testing.T) {
		want := listTags(t)
		dataDir := ts.dataDir
		ts.stop()
		ts2 := startServer(t, dataDir)
		cli.endpoint = ts2.URL
		if got := listTags(t); !maps.Equal(got, want) || len(got) == 0 {
			t.Fatalf("after a restart: %v, want %v", got, want)
		}
	})
}
