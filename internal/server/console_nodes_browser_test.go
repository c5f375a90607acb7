package server_test

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/owl-project/owl/internal/lambdawire"
)

// nodeRowSel is the CSS selector of node name's row on the nodes page.
func nodeRowSel(name string) string {
	return fmt.Sprintf(`#nodes tr[data-node=%s]`, jsString(name))
}

// startedEnv is a JavaScript expression (%s: a row's selector) true
// when the environments table's row counts an environment in any state.
const startedEnv = `(() => { const r = document.querySelector(%s); return r !== null && ["starting", "busy", "idle", "frozen"].some((s) => Number(r.querySelector("[data-state=" + s + "]").textContent) > 0); })()`

// signInToNodes opens the console at url, signs in and opens the nodes
// page, waiting until it lists want nodes.
func signInToNodes(p page, url string, want int) {
	p.t.Helper()
	p.do("opening the console", chromedp.Navigate(url+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.submitToken("signing in", testToken)
	p.waitText("main h1", "Functions")
	p.do("opening the nodes page", chromedp.Click(chromedp.CSS(`#nav a[href="#/nodes"]`)))
	p.waitText("#nodes-count", fmt.Sprintf("%d node", want))
}

// drainFromPage clicks name's Drain (or Undrain) button, then confirms.
func drainFromPage(p page, name, verb string) {
	p.t.Helper()
	row := nodeRowSel(name)
	p.waitText(row+" button.drain", verb)
	p.do(verb+" "+name, chromedp.Click(chromedp.CSS(row+" button.drain")))
	p.waitText(row+" button.confirm", verb+" "+name)
	p.do("confirming", chromedp.Click(chromedp.CSS(row+" button.confirm")))
}

// checkNodeRow compares name's row with the API's record of the node:
// role, version, health (its badge), runtimes and total memory.
func checkNodeRow(t *testing.T, p page, n lambdawire.Node) {
	t.Helper()
	row := nodeRowSel(n.Name)
	p.waitJS(fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(row)), "the row of "+n.Name)
	cells := eval[[]string](p, fmt.Sprintf(`[...document.querySelector(%s).cells].map((c) => c.textContent)`, jsString(row)))
	if len(cells) < 9 {
		t.Fatalf("the row of %s has %d cells: %q", n.Name, len(cells), cells)
	}
	want := map[int]string{0: n.Name, 1: n.Role, 2: n.Version, 3: n.Health, 6: strings.Join(n.Runtimes, ", ")}
	if n.Role == "api" {
		want[4], want[5], want[6] = "-", "-", "-"
	} else {
		want[4] = fmt.Sprintf("/%d MB", n.MemoryMB)
		want[5] = fmt.Sprintf("/%d", n.ConcurrencyLimit)
	}
	for i, w := range want {
		if !strings.Contains(cells[i], w) {
			t.Errorf("cell %d of %s's row is %q, want %q (the API's record)", i, n.Name, cells[i], w)
		}
	}
	badge := eval[string](p, fmt.Sprintf(`document.querySelector(%s).querySelector(".badge").className`, jsString(row)))
	if n.Health == "ok" && !strings.Contains(badge, "health-ok") {
		t.Errorf("%s is ok, its health badge is %q", n.Name, badge)
	}
}

// TestConsoleNodes: in a real Chromium, a node outside a cluster lists
// itself on the nodes page as the API does (health ok, its runtimes);
// selecting it shows its environments per function version, and the
// page refreshes on its own (a function invoked after it opened
// appears); a focused button keeps its focus across refreshes; Drain,
// confirmed, shows the API's error type and message inline and changes
// nothing; Cancel sends nothing; markup in a node name (typed into the
// address) stays text; it fits a 360 px screen.
func TestConsoleNodes(t *testing.T) {
	ts := startServer(t, "")
	p := page{t: t, ctx: startChromium(t)}
	ts.createKitchensink("node-fn")
	ts.invoke("node-fn", `{}`)
	api := (&owlProcess{testServer: ts}).nodes(t)
	if len(api) != 1 {
		t.Fatalf("a node alone lists %d nodes", len(api))
	}
	var self lambdawire.Node
	for _, n := range api {
		self = n
	}
	if self.Health != "ok" || len(self.Runtimes) == 0 {
		t.Fatalf("the node alone: %+v", self)
	}

	signInToNodes(p, ts.URL, 1)
	checkNodeRow(t, p, self)

	// Selecting the node shows its environments, and a version that runs
	// after the page opened appears on a refresh.
	p.do("selecting the node", chromedp.Click(chromedp.CSS(nodeRowSel(self.Name)+" th a")))
	p.waitText("#node-envs h2", "Environments on "+self.Name)
	envRow := `#node-envs-table tr[data-version="%s:$LATEST"]`
	p.waitJS(fmt.Sprintf(startedEnv, jsString(fmt.Sprintf(envRow, "node-fn"))), "node-fn's environment on the node")
	ts.createKitchensink("later-fn")
	ts.invoke("later-fn", `{}`)
	p.waitJS(fmt.Sprintf(startedEnv, jsString(fmt.Sprintf(envRow, "later-fn"))), "later-fn's environment, after a refresh")

	// The focus stays on a button through refreshes.
	row := nodeRowSel(self.Name)
	eval[bool](p, fmt.Sprintf(`(() => { document.querySelector(%s).focus(); return true; })()`, jsString(row+" button.drain")))
	before := eval[string](p, `document.getElementById("nodes-status").textContent`)
	p.waitJS(fmt.Sprintf(`document.getElementById("nodes-status").textContent !== %s`, jsString(before)), "a refresh")
	if focused := eval[bool](p, fmt.Sprintf(`document.activeElement === document.querySelector(%s)`, jsString(row+" button.drain"))); !focused {
		t.Error("a refresh took the focus from the Drain button")
	}

	// Cancel sends nothing; the button is back.
	p.do("Drain", chromedp.Click(chromedp.CSS(row+" button.drain")))
	p.do("Cancel", chromedp.Click(chromedp.CSS(row+" button.cancel")))
	p.waitText(row+" button.drain", "Drain")
	if msg := eval[string](p, fmt.Sprintf(`document.querySelector(%s).textContent`, jsString(row+" td.actions .error"))); msg != "" {
		t.Errorf("a cancelled drain shows %q", msg)
	}

	// A node alone cannot drain: the API's 400, shown inline.
	drainFromPage(p, self.Name, "Drain")
	msg := p.waitText(row+" td.actions .error", "InvalidParameterValueException: This node is not part of a cluster")
	if !strings.Contains(msg, "Draining "+self.Name+" failed") {
		t.Errorf("the drain error reads %q", msg)
	}
	p.waitText(row+" button.drain", "Drain")
	if n := (&owlProcess{testServer: ts}).nodes(t)[self.Name]; n.Health != "ok" || n.Draining {
		t.Errorf("after a refused drain the node is %s (draining %v)", n.Health, n.Draining)
	}
	if h := p.waitText(row, "ok"); strings.Contains(h, "draining") {
		t.Errorf("after a refused drain the row reads %q", h)
	}

	// A node name with markup, from the address bar: no such node, said
	// as text.
	const hostile = `<img src=x onerror="window.owlPwned=1">`
	eval[string](p, `location.hash = "#/nodes/" + encodeURIComponent(`+jsString(hostile)+`); ""`)
	p.waitText("#node-envs", "No node named "+hostile+" is listed.")
	if pwned := eval[bool](p, `window.owlPwned !== undefined || document.querySelector("#main img, #main script") !== null`); pwned {
		t.Fatal("markup in a node name became an element")
	}

	// A phone's width: the page does not scroll sideways.
	p.do("a 360 px wide screen", chromedp.EmulateViewport(360, 740))
	if over := eval[float64](p, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
		t.Errorf("at 360 px, the nodes page is %v px wider than the screen", over)
	}
	p.do("a desktop's width again", chromedp.EmulateViewport(1280, 900))
}

// TestConsoleNodesCluster: in a real Chromium, the console of an api node
// of a cluster lists its three nodes as the API does, a worker that ran
// a function shows its environments and the api node none; w1 drained from
// the page is draining in the API's list (and the page), and undrained
// from the page is back in service; the api node has no drain button;
// w2 killed shows lost, and draining it shows the API's 404 in its row.
func TestConsoleNodesCluster(t *testing.T) {
	c := startTestCluster(t)
	p := page{t: t, ctx: startChromium(t)}
	c.api.createKitchensink("spread")
	wantAllOK(t, "spread", invokeMany(c.api.URL, "spread", `{"action":"sleep","ms":100}`, 8, 4))
	ran := "w1"
	if c.w1.invocationsOf(t, "spread") == 0 {
		ran = "w2"
	}
	signInToNodes(p, c.api.URL, 3)
	nodes := c.api.nodes(t)
	names := make([]string, 0, len(nodes))
	for name, n := range nodes {
		names = append(names, name)
		checkNodeRow(t, p, n)
	}
	slices.Sort(names)
	if shown := eval[[]string](p, `[...document.querySelectorAll("#nodes tbody tr")].map((r) => r.dataset.node)`); !slices.Equal(shown, names) {
		t.Errorf("the page lists %q, the API %q", shown, names)
	}
	if n := eval[int](p, fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(nodeRowSel("api1")+" button"))); n != 0 {
		t.Errorf("the api node's row has %d buttons, want none (it runs no environments)", n)
	}
	// The environments of a worker that ran the function; the api node
	// has none.
	p.do("selecting "+ran, chromedp.Click(chromedp.CSS(nodeRowSel(ran)+" th a")))
	p.waitJS(fmt.Sprintf(startedEnv, jsString(`#node-envs-table tr[data-version="spread:$LATEST"]`)), "spread's environments on "+ran)
	p.do("selecting api1", chromedp.Click(chromedp.CSS(nodeRowSel("api1")+" th a")))
	p.waitText("#node-envs-none", "runs no environments")

	drainFromPage(p, "w1", "Drain")
	p.waitJS(fmt.Sprintf(`document.querySelector(%s).dataset.health === "draining"`, jsString(nodeRowSel("w1"))), "w1 draining on the page")
	if n := c.api.nodes(t)["w1"]; n.Health != "draining" || !n.Draining {
		t.Errorf("drained from the console, w1 is %s (draining %v) in the API's list", n.Health, n.Draining)
	}
	if n := c.api.nodes(t)["w2"]; n.Health != "ok" {
		t.Errorf("draining w1 left w2 %s", n.Health)
	}
	p.screenshot("console-nodes.png")

	drainFromPage(p, "w1", "Undrain")
	p.waitJS(fmt.Sprintf(`document.querySelector(%s).dataset.health === "ok"`, jsString(nodeRowSel("w1"))), "w1 back in service on the page")
	if n := c.api.nodes(t)["w1"]; n.Health != "ok" || n.Draining {
		t.Errorf("undrained from the console, w1 is %s (draining %v) in the API's list", n.Health, n.Draining)
	}

	// w2 killed: lost on the page, in the alarm's colour; draining it is
	// refused by the API (no live node of that name), said in its row.
	cleanAfterKill(t, c.nats, c.w2, "w2", "--runtimes", "provided,provided.al2,provided.al2023")
	if err := c.w2.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.w2.waitExit(t, 30*time.Second)
	w2 := nodeRowSel("w2")
	p.waitJS(fmt.Sprintf(`document.querySelector(%s).dataset.health === "lost"`, jsString(w2)), "w2 lost on the page")
	if badge := eval[string](p, fmt.Sprintf(`document.querySelector(%s).className`, jsString(w2+" .badge"))); !strings.Contains(badge, "health-bad") {
		t.Errorf("w2 is lost, its badge is %q", badge)
	}
	drainFromPage(p, "w2", "Drain")
	p.waitText(w2+" td.actions .error", "Draining w2 failed: ResourceNotFoundException: No live node named w2")
	for _, n := range []*owlProcess{c.api, c.w1} {
		n.sigterm(t)
	}
	for _, n := range []*owlProcess{c.api, c.w1} {
		n.wantCleanStop(t)
	}
}
