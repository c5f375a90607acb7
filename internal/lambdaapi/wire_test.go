package lambdaapi_test

import (
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The exact bytes of the wire shapes (internal/lambdawire, shared with the
// client): field names, their order and which are left out when empty are
// what SDKs and parity with Lambda rely on, so a change to them shows here.
func TestWireShapes(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	h.do("PUT", fns+"/fn/configuration", map[string]any{"Environment": map[string]any{"Variables": map[string]string{"GREETING": "hi"}}}).
		ok(t, http.StatusOK, nil)
	h.do("POST", fns+"/fn/versions", map[string]any{}).ok(t, http.StatusCreated, nil)
	h.do("PUT", fns+"/fn/code", map[string]any{"ZipFile": zipOf(t, "v2"), "Publish": true}).ok(t, http.StatusOK, nil)
	h.do("POST", fns+"/fn/aliases", map[string]any{"Name": "live", "FunctionVersion": "1",
		"RoutingConfig": map[string]any{"AdditionalVersionWeights": map[string]float64{"2": 0.5}}}).ok(t, http.StatusCreated, nil)
	h.do("PUT", "/2017-10-31/functions/fn/concurrency", map[string]any{"ReservedConcurrentExecutions": 5}).ok(t, http.StatusOK, nil)
	varying := regexp.MustCompile(`"(LastModified|RevisionId|CodeSha256|Location)":"[^"]*"`)
	config := `{"FunctionName":"fn","FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:fn","Runtime":"provided.al2023","Role":"arn:aws:iam::000000000000:role/test","Handler":"bootstrap","CodeSize":141,"Description":"","Timeout":3,"MemorySize":128,"LastModified":X,"CodeSha256":X,"Version":"$LATEST","Environment":{"Variables":{"GREETING":"hi"}},"TracingConfig":{"Mode":"PassThrough"},"RevisionId":X,"State":"Active","LastUpdateStatus":"Successful","PackageType":"Zip","Architectures":["x86_64"],"EphemeralStorage":{"Size":512},"LoggingConfig":{"LogFormat":"Text","LogGroup":"/aws/lambda/fn"},"Network":"none"}`
	for _, tc := range []struct{ path, want string }{
		{fns + "/fn/configuration", config},
		{fns + "/fn", `{"Configuration":` + config + `,"Code":{"RepositoryType":"S3","Location":X},"Concurrency":{"ReservedConcurrentExecutions":5}}`},
		{fns + "/fn/aliases/live", `{"AliasArn":"arn:aws:lambda:us-east-1:000000000000:function:fn:live","Name":"live","FunctionVersion":"1","Description":"","RoutingConfig":{"AdditionalVersionWeights":{"2":0.5}},"RevisionId":X}`},
	} {
		resp := h.do("GET", tc.path, nil)
		resp.ok(t, http.StatusOK, nil)
		want := tc.want
		if runtime.GOARCH == "arm64" {
			want = strings.Replace(want, "x86_64", "arm64", 1)
		}
		if got := varying.ReplaceAllString(string(resp.body), `"$1":X`); got != want {
			t.Errorf("GET %s:\n got %s\nwant %s", tc.path, got, want)
		}
	}
}
