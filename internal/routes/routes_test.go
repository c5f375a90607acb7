package routes

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/testkit/fakefns"
	"github.com/owl-project/owl/internal/testkit/natstest"
)

func TestPattern(t *testing.T) {
	for key, want := range map[string]string{
		"$default":              "/",
		"GET /users/{id}":       "GET /users/{id}",
		"ANY /files/{path+}":    "/files/{path...}",
		"POST /users":           "POST /users",
		"GET /":                 "GET /{$}",
		"GET /users/":           "GET /users/{$}",
		"DELETE /a/{b}/c/{d+}":  "DELETE /a/{b}/c/{d...}",
		"GET /v1.0/items:batch": "GET /v1.0/items:batch",
	} {
		got, err := Pattern(key)
		if err != nil || got != want {
			t.Errorf("Pattern(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for key, why := range map[string]string{
		"GET":                              "METHOD /path",
		"FETCH /x":                         "METHOD /path",
		"GET users":                        "must start with /",
		"GET /a//b":                        "neither a name",
		"GET /{a+}/b":                      "must be the last",
		"GET /{1a}":                        "neither a name",
		"GET /a b":                         "neither a name",
		"get /x":                           "METHOD /path",
		"GET /x/{y}{z}":                    "neither a name",
		"GET /" + strings.Repeat("a", 600): "at most 512",
	} {
		if _, err := Pattern(key); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Pattern(%q) = %v, want an error saying %q", key, err, why)
		}
	}
	if got := Params("GET /a/{b}/c/{d+}"); !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("Params = %v", got)
	}
}

func TestTable(t *testing.T) {
	ctx := context.Background()
	bus := natstest.Start(t)
	var got []string
	serve := func(w http.ResponseWriter, r *http.Request, rt Route) {
		got = append(got, rt.Function+" "+strings.Join(func() (v []string) {
			for _, p := range Params(rt.Key) {
				v = append(v, p+"="+r.PathValue(p))
			}
			return
		}(), ","))
	}
	tbl, err := Open(ctx, bus.JS, fakefns.Functions{"users": true, "files": true, "fallback": true}, serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	for key, fn := range map[string]string{"GET /users/{id}": "users", "ANY /files/{path+}": "files", "$default": "fallback"} {
		if _, err := tbl.Add(ctx, key, fn, ""); err != nil {
			t.Fatalf("Add %s: %v", key, err)
		}
	}
	for _, c := range []struct {
		key, fn string
		code    string
	}{
		{"GET /users/{name}", "users", lambdaerr.InvalidParameterValue}, // the same route, another name
		{"GET /users/{id}", "users", lambdaerr.InvalidParameterValue},
		{"$default", "users", lambdaerr.InvalidParameterValue},
		{"GET /x", "nope", lambdaerr.ResourceNotFound},
		{"BREW /x", "users", lambdaerr.InvalidParameterValue},
		{"GET /x", "users", ""},
	} {
		_, err := tbl.Add(ctx, c.key, c.fn, "")
		if c.code == "" && err != nil || c.code != "" && !lambdaerr.Is(err, c.code) {
			t.Errorf("Add(%q, %s) = %v, want %s", c.key, c.fn, err, c.code)
		}
	}
	for _, path := range []string{"/users/42", "/files/a/b/c.txt", "/elsewhere", "/x"} {
		tbl.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	want := []string{"users id=42", "files path=a/b/c.txt", "fallback ", "users "}
	if !slices.Equal(got, want) {
		t.Fatalf("served %q, want %q", got, want)
	}
	// A second table on the same bucket (another node) sees the routes.
	other, err := Open(ctx, bus.JS, fakefns.Functions{}, serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if n := len(other.List()); n != 4 {
		t.Fatalf("another node's table has %d routes, want 4", n)
	}
	if err := tbl.Delete(ctx, "$default"); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	tbl.ServeHTTP(rec, httptest.NewRequest("GET", "/elsewhere", nil))
	if rec.Code != 404 || rec.Body.String() != `{"message":"Not Found"}` {
		t.Fatalf("no route: %d %s", rec.Code, rec.Body)
	}
	if err := tbl.Delete(ctx, "GET /nope"); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Fatalf("Delete of an unknown route: %v", err)
	}
}
