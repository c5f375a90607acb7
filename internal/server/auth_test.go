package server_test

// Authentication: every unauthenticated or wrongly signed request is
// refused with AWS's 403 errors and never reaches a function.

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// sdkWith is an SDK client for ts signing with the given key pair.
func (ts *testServer) sdkWith(keyID, secret string) *lambda.Client {
	return lambda.New(lambda.Options{
		BaseEndpoint:     aws.String(ts.URL),
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(keyID, secret, ""),
		RetryMaxAttempts: 1,
	})
}

func TestAuth(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("guarded")
	ran := ts.loggedInvocations("guarded")
	before := ts.functionsSnapshot()
	const invalidToken = "The security token included in the request is invalid."

	raw := []struct {
		name    string
		auth    string // "" sends no Authorization header
		payload string
		code    string
		msg     string
	}{
		{"no Authorization", "", `{}`, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"wrong bearer token", "Bearer owl_wrong_token", `{}`, "UnrecognizedClientException", invalidToken},
		{"unsupported scheme", "Basic dXNlcjpwYXNz", `{}`, "IncompleteSignatureException", "~"},
		// Too large and anonymous: the client learns nothing but 403.
		{"no Authorization, payload too large", "", `"` + strings.Repeat("a", 6291556) + `"`, "MissingAuthenticationTokenException", "Missing Authentication Token"},
	}
	for _, c := range raw {
		t.Run(c.name, func(t *testing.T) {
			resp, body := ts.as(t).rawInvoke("guarded/invocations", c.payload, map[string]string{"Authorization": c.auth})
			wantError(t, resp, body, http.StatusForbidden, c.code, c.msg)
		})
	}
	t.Run("management without Authorization", func(t *testing.T) {
		resp, body := ts.as(t).do(http.MethodGet, "/2015-03-31/functions", nil, map[string]string{"Authorization": ""})
		wantError(t, resp, body, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
		resp, body = ts.as(t).do(http.MethodDelete, "/2015-03-31/functions/guarded", nil, map[string]string{"Authorization": "Bearer nope"})
		wantError(t, resp, body, http.StatusForbidden, "UnrecognizedClientException", invalidToken)
	})

	sdk := []struct {
		name          string
		keyID, secret string
		code          string
	}{
		{"SDK with a wrong secret", testKeyID, "not-the-secret-0123456789abcdefghijklmn", "InvalidSignatureException"},
		{"SDK with an unknown access key", "AKIAUNKNOWNKEY000001", testSecret, "UnrecognizedClientException"},
	}
	for _, c := range sdk {
		t.Run(c.name, func(t *testing.T) {
			_, err := ts.sdkWith(c.keyID, c.secret).Invoke(context.Background(), &lambda.InvokeInput{
				FunctionName: aws.String("guarded"), Payload: []byte(`{}`),
			})
			if code, status := sdkError(t, err); code != c.code || status != http.StatusForbidden {
				t.Errorf("got %s %d, want %s 403", code, status, c.code)
			}
			_, err = ts.sdkWith(c.keyID, c.secret).DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("guarded")})
			if code, _ := sdkError(t, err); code != c.code {
				t.Errorf("DeleteFunction: got %s, want %s", code, c.code)
			}
		})
	}

	if after := ts.functionsSnapshot(); after != before {
		t.Errorf("refused requests changed the functions:\nbefore:\n%safter:\n%s", before, after)
	}
	if got := ts.loggedInvocations("guarded"); got != ran+1 {
		t.Errorf("unauthenticated requests ran the function %d times", got-ran-1)
	}
}
