package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestRoutes: one HTTP API, driven by plain HTTP, with routes added by
// the owl binary to functions in Go, Python and Node.js: path parameters,
// methods, a greedy parameter and the $default catch-all reach the right
// function with payload format 2.0's routeKey and pathParameters; a
// clashing route is refused; a removed route stops answering.
func TestRoutes(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "")
	ts.createKitchensink("r-go")
	ts.createZip("r-py", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: urlPython}))
	ts.createZip("r-node", interpreter(t, "nodejs"), "index.handler", makeZip(t, zipEntry{name: "index.mjs", body: urlNode}))

	for _, r := range [][]string{
		{"GET /users/{id}", "r-py"},
		{"POST /users", "r-node"},
		{"ANY /files/{path+}", "r-py"},
		{"$default", "r-go"},
	} {
		if stdout, stderr, code := owlCLI(t, ts.URL, "route", "add", r[0], r[1]); code != 0 || !strings.Contains(stdout, r[0]+" → "+r[1]) {
			t.Fatalf("owl route add %s %s: exit %d\n%s\n%s", r[0], r[1], code, stdout, stderr)
		}
	}
	stdout, stderr, code := owlCLI(t, ts.URL, "route", "add", "GET /users/{name}", "r-go")
	if code == 0 || !strings.Contains(stderr, "conflicts") {
		t.Fatalf("a clashing route: exit %d\n%s\n%s", code, stdout, stderr)
	}

	type event struct {
		RouteKey       string            `json:"routeKey"`
		RawPath        string            `json:"rawPath"`
		PathParameters map[string]string `json:"pathParameters"`
		RequestContext struct {
			RouteKey string `json:"routeKey"`
			HTTP     struct{ Method string }
		} `json:"requestContext"`
	}
	get := func(method, path string, wantStatus int) string {
		t.Helper()
		resp, body := httpDo(t, method, ts.URL+"/http"+path, []byte(`{}`), map[string]string{"Content-Type": "application/json"})
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, body, wantStatus)
		}
		return string(body)
	}
	var ev event
	if err := json.Unmarshal([]byte(get("GET", "/users/42", 200)), &ev); err != nil || ev.RouteKey != "GET /users/{id}" ||
		ev.PathParameters["id"] != "42" || ev.RawPath != "/users/42" || ev.RequestContext.RouteKey != "GET /users/{id}" {
		t.Fatalf("GET /users/42 reached the function as %+v (%v)", ev, err)
	}
	if body := get("POST", "/users", 201); body != "node /users" {
		t.Fatalf("POST /users: %s", body)
	}
	if err := json.Unmarshal([]byte(get("DELETE", "/files/a/b/c.txt", 200)), &ev); err != nil ||
		ev.PathParameters["path"] != "a/b/c.txt" || ev.RequestContext.HTTP.Method != "DELETE" {
		t.Fatalf("DELETE /files/a/b/c.txt reached the function as %+v (%v)", ev, err)
	}
	// No route of their own: the catch-all (the Go function's inferred 200).
	for _, path := range []string{"/", "/nowhere", "/users"} { // GET /users: only POST has a route
		if body := get("GET", path, 200); body != `{"message":"hello world"}` {
			t.Fatalf("GET %s: %s, want the $default route's answer", path, body)
		}
	}

	stdout, _, _ = owlCLI(t, ts.URL, "route", "ls")
	if strings.Count(stdout, "\n") != 5 || !strings.Contains(stdout, "GET /users/{id}") {
		t.Fatalf("owl route ls:\n%s", stdout)
	}
	for _, key := range []string{"$default", "GET /users/{id}"} {
		if _, stderr, code := owlCLI(t, ts.URL, "route", "rm", key); code != 0 {
			t.Fatalf("owl route rm %s: exit %d\n%s", key, code, stderr)
		}
	}
	if body := get("GET", "/users/42", 404); body != `{"message":"Not Found"}` {
		t.Fatalf("a removed route: %s", body)
	}
	resp, body := ts.do("DELETE", "/owl/v1/routes/"+url.PathEscape("GET /users/{id}"), nil, nil)
	wantError(t, resp, body, 404, "ResourceNotFoundException", "Route not found: GET /users/{id}")
	resp, body = ts.do("POST", "/owl/v1/routes", []byte(`{"RouteKey":"GET /x","Function":"nope"}`), nil)
	wantError(t, resp, body, 404, "ResourceNotFoundException", "~nope")
	resp, body = ts.do("POST", "/owl/v1/routes", []byte(`{"RouteKey":"GET x","Function":"r-go"}`), nil)
	wantError(t, resp, body, 400, "InvalidParameterValueException", "~must start with /")
}
