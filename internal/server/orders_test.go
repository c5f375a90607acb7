package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/testkit"
)

// exampleZip zips the files of examples/orders/<name>.
func exampleZip(t *testing.T, name string) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "examples", "orders", name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []zipEntry
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, zipEntry{name: e.Name(), body: string(b)})
	}
	return makeZip(t, files...)
}

// TestOrdersExample runs the README's event-driven application as it is
// written (examples/orders): a route, a subject trigger and a schedule
// feeding Python and Node.js functions that call each other from inside
// their sandboxes.
func TestOrdersExample(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "", asyncConfig)
	py, node := interpreter(t, "python3"), interpreter(t, "nodejs")
	ts.createZip("intake", py, "app.handler", exampleZip(t, "intake"))
	ts.createZip("notify", py, "app.handler", exampleZip(t, "notify"))
	ts.createZip("ship", node, "index.handler", exampleZip(t, "ship"))
	ts.createZip("report", node, "index.handler", exampleZip(t, "report"))
	for _, args := range [][]string{
		{"route", "add", "POST /orders", "intake"},
		{"trigger", "add", "--subject", "orders.created", "--function", "ship"},
		{"trigger", "add", "every-second", "--schedule", "rate(1 second)", "--function", "report"},
	} {
		if _, stderr, code := owlCLI(t, ts.URL, args...); code != 0 {
			t.Fatalf("owl %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	resp, body := httpDo(t, "POST", ts.URL+"/http/orders", []byte(`{"item":"owl plush","qty":2}`), nil)
	m := regexp.MustCompile(`"accepted": "([0-9a-f]{8})"`).FindStringSubmatch(string(body))
	if resp.StatusCode != 202 || m == nil {
		t.Fatalf("POST /orders: %d %s", resp.StatusCode, body)
	}
	testkit.WaitFor(t, 2*time.Minute, "the order shipped and notified", func() bool {
		return strings.Contains(ts.logText("ship"), "shipping order "+m[1]+": 2 x owl plush") &&
			strings.Contains(ts.logText("notify"), "notify: order "+m[1]+" shipped")
	})
	testkit.WaitFor(t, 2*time.Minute, "a report notified", func() bool {
		return strings.Contains(ts.logText("notify"), "notify: report at ")
	})
}
