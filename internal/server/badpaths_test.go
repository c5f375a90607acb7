package server_test

// Every bad name in a path is the client's error: a 4xx with Lambda's
// error shape, never a 500 from the store, never a redirect.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestBadPathParameters(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("good")
	ts.publish("good")

	bad := []string{"*", ">", "a b", "..", ".", "a.b", "a*b", "x>y", "%2F", "a/b", "$LATEST$", strings.Repeat("a", 200), "\x00", "é"}
	routes := []struct{ method, path string }{
		{"GET", "/2015-03-31/functions/{name}"},
		{"GET", "/2015-03-31/functions/{name}/configuration"},
		{"PUT", "/2015-03-31/functions/{name}/configuration"},
		{"PUT", "/2015-03-31/functions/{name}/code"},
		{"DELETE", "/2015-03-31/functions/{name}"},
		{"POST", "/2015-03-31/functions/{name}/invocations"},
		{"POST", "/2015-03-31/functions/{name}/versions"},
		{"GET", "/2015-03-31/functions/{name}/versions"},
		{"GET", "/2015-03-31/functions/{name}/aliases"},
		{"POST", "/2015-03-31/functions/{name}/aliases"},
		{"GET", "/2015-03-31/functions/good/aliases/{name}"},
		{"PUT", "/2015-03-31/functions/good/aliases/{name}"},
		{"DELETE", "/2015-03-31/functions/good/aliases/{name}"},
		{"GET", "/2015-03-31/functions/{name}/aliases/live"},
		{"PUT", "/2017-10-31/functions/{name}/concurrency"},
		{"GET", "/2019-09-30/functions/{name}/concurrency"},
		{"DELETE", "/2017-10-31/functions/{name}/concurrency"},
		{"PUT", "/2019-09-30/functions/good/provisioned-concurrency?Qualifier={name}"},
		{"GET", "/2019-09-30/functions/good/provisioned-concurrency?Qualifier={name}"},
		{"DELETE", "/2019-09-30/functions/good/provisioned-concurrency?Qualifier={name}"},
		{"PUT", "/2019-09-25/functions/{name}/event-invoke-config"},
		{"POST", "/2019-09-25/functions/good/event-invoke-config?Qualifier={name}"},
		{"GET", "/2019-09-25/functions/good/event-invoke-config?Qualifier={name}"},
		{"DELETE", "/2019-09-25/functions/{name}/event-invoke-config"},
		{"GET", "/2019-09-25/functions/{name}/event-invoke-config/list"},
		{"GET", "/2015-03-31/functions/good?Qualifier={name}"},
		{"POST", "/2015-03-31/functions/good/invocations?Qualifier={name}"},
		{"DELETE", "/2015-03-31/functions/good?Qualifier={name}"},
		{"GET", "/owl/v1/functions/{name}/logs"},
		{"GET", "/owl/v1/functions/{name}/code"},
		{"POST", "/2018-10-31/layers/{name}/versions"},
		{"GET", "/2018-10-31/layers/{name}/versions"},
		{"GET", "/2018-10-31/layers/{name}/versions/1"},
		{"DELETE", "/2018-10-31/layers/{name}/versions/1"},
		{"GET", "/2018-10-31/layers/good/versions/{name}"},
		{"DELETE", "/2018-10-31/layers/good/versions/{name}"},
		{"GET", "/owl/v1/layers/{name}/versions/1/content"},
	}
	body := []byte(`{"Name":"x","FunctionVersion":"1","ReservedConcurrentExecutions":1,"ProvisionedConcurrentExecutions":1}`)
	for _, rt := range routes {
		for _, b := range bad {
			esc := url.PathEscape(b)
			if strings.Contains(rt.path, "?") && strings.Index(rt.path, "{name}") > strings.Index(rt.path, "?") {
				esc = url.QueryEscape(b)
			}
			if b == "a/b" || b == ".." || b == "." {
				esc = b // raw: a path separator or a dot segment as sent
			}
			path := strings.Replace(rt.path, "{name}", esc, 1)
			resp, respBody := ts.do(rt.method, path, body, map[string]string{"Content-Type": "application/json"})
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("%s %s: %d %.200s; want a 4xx", rt.method, path, resp.StatusCode, respBody)
				continue
			}
			if resp.Header.Get("X-Amzn-ErrorType") == "" {
				t.Errorf("%s %s: %d without X-Amzn-ErrorType", rt.method, path, resp.StatusCode)
			}
		}
	}
	// The good function was not touched by any of it.
	ts.wantWorks("good")

	// A body on a GET past the 64 KiB an operation without a body reads:
	// 413 naming that limit.
	resp, respBody := ts.do("GET", "/2015-03-31/functions/good", make([]byte, 70<<10), nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(respBody), "65536") {
		t.Errorf("GET with a 70 KiB body: %d %s", resp.StatusCode, respBody)
	}
}
