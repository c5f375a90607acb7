package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTopAgainstServer: owl top --once, run against a real server, shows
// exactly the invocations made between its two scrapes — a proxy holds
// the second scrape until they are done, so no timing decides the counts;
// and a token the server refuses is named as the cause.
func TestTopAgainstServer(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "")
	ts.createKitchensink("topped")
	ts.invoke("topped", `{}`) // before the window: cold, and not counted

	target, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxied := httputil.NewSingleHostReverseProxy(target)
	transport := &http.Transport{}
	proxied.Transport = transport
	firstDone, window := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	scrapes := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		scrapes++
		n := scrapes
		mu.Unlock()
		if n == 2 {
			<-window
		}
		proxied.ServeHTTP(w, r)
		if n == 1 {
			close(firstDone)
		}
	}))
	var closeWindow sync.Once
	t.Cleanup(func() {
		closeWindow.Do(func() { close(window) })
		proxy.Close()
		transport.CloseIdleConnections()
	})

	top := startOwlCommand(t, proxy.URL, "top", "--once", "--interval", "10ms")
	out := top.out
	select {
	case <-firstDone:
	case <-top.done:
		t.Fatalf("owl top ended before its second scrape: %v\n%s", top.err, out.String())
	case <-time.After(time.Minute):
		t.Fatalf("owl top never scraped:\n%s", out.String())
	}
	ts.invoke("topped", `{}`)
	ts.invoke("topped", `{}`)
	if r := ts.invoke("topped", `{"action":"error"}`); r.funcErr == "" {
		t.Fatalf("the error action succeeded: %+v", r)
	}
	closeWindow.Do(func() { close(window) })
	<-top.done
	if top.err != nil {
		t.Fatalf("owl top --once: %v\n%s", top.err, out.String())
	}

	var row []string
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "topped" {
			row = f
		}
	}
	// FUNCTION INV/S INV ERR THR COLD P50 P99 CONC ENV B/I/F: one
	// environment, idle or frozen by now.
	if len(row) != 10 || (row[9] != "0/1/0" && row[9] != "0/0/1") || strings.Join(row[2:6], " ") != "3 1 0 0" || row[6] == "-" || row[7] == "-" ||
		!strings.Contains(out.String(), "environments busy 0, idle ") {
		t.Fatalf("owl top --once: topped's INV ERR THR COLD are not 3 1 0 0, or no quantiles:\n%s", out.String())
	}

	// A token the server refuses.
	cmd := exec.Command(owlBinary, "top", "--once", "--interval", "10ms")
	cmd.Env = owlEnv("OWL_ENDPOINT="+ts.URL, "OWL_TOKEN=not-the-token")
	stdout, stderr, code := runCmd(t, cmd)
	if code != 1 || !strings.Contains(stderr, "refused GET /metrics") || !strings.Contains(stderr, "this token may not read metrics") {
		t.Fatalf("owl top with a refused token: exit %d\n%s%s", code, stdout, stderr)
	}
}
