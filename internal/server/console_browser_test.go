package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/owl-project/owl/internal/console"
	"github.com/owl-project/owl/internal/testkit"
)

// consoleScreenshots, when set, is where TestConsoleBrowser writes its
// screenshots of the console's pages (docs/ keeps them):
//
//	go test ./internal/server -run TestConsoleBrowser -console-screenshots ../../docs
var consoleScreenshots = flag.String("console-screenshots", "", "directory to write the console's screenshots to")

// browserPatience bounds each wait for the page: it only limits how long
// a broken test takes to fail.
const browserPatience = 60 * time.Second

// startChromium starts a headless Chromium with a temporary profile of
// its own (chromedp makes it, and removes it with every process of the
// browser when it ends); t's cleanup ends it and checks that no process
// of it is left.
func startChromium(t testing.TB) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testkit.Skipf(t, "no Chromium on this host (apt-get install chromium): the console's browser tests need it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	pid := chromedp.FromContext(ctx).Browser.Process().Pid
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	profile := ""
	for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
		if p, ok := strings.CutPrefix(string(arg), "--user-data-dir="); ok {
			profile = p
		}
	}
	if profile == "" {
		t.Fatalf("chromium %d has no --user-data-dir of its own: %q", pid, cmdline)
	}
	t.Cleanup(func() {
		closing, done := context.WithTimeout(ctx, 30*time.Second)
		if err := chromedp.Cancel(closing); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		done()
		cancel()
		cancelAlloc() // waits for the browser and the removal of its profile
		if left := processesUsing(profile); len(left) > 0 {
			t.Errorf("chromium processes left after the test: %v", left)
		}
		if _, err := os.Stat(profile); !os.IsNotExist(err) {
			t.Errorf("chromium's profile %s is left: %v", profile, err)
		}
	})
	return ctx
}

// processesUsing lists the processes with profile as their Chromium
// profile (Chromium gives every child process the flag).
func processesUsing(profile string) []int {
	want := []byte("--user-data-dir=" + profile)
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// page is a test's browser tab.
type page struct {
	t   testing.TB
	ctx context.Context
}

// do runs actions, failing the test on an error.
func (p page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) into a value
// of type T.
func eval[T any](p page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitText waits until the text of the element sel contains want, and
// returns that text.
func (p page) waitText(sel, want string) string {
	p.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e && e.textContent.includes(%s) ? e.textContent : ""; })()`,
		jsString(sel), jsString(want))
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	text, err := chromedp.Run(ctx, chromedp.Poll[string](js, chromedp.WithPollingTimeout(browserPatience), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		now, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%s) || {textContent: "(no such element)"}).textContent`, jsString(sel))))
		main, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("main").textContent`))
		p.t.Fatalf("waiting for %s to contain %q: %v; it has %q; the page shows %q", sel, want, err, now, main)
	}
	return text
}

// waitJS waits until the JavaScript expression is true.
func (p page) waitJS(expr, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(browserPatience), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		main, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("main").textContent`))
		p.t.Fatalf("waiting for %s (%s): %v; the page shows %q", what, expr, err, main)
	}
}

// fill sets the value of the input sel as typing would (its input and
// change events fire).
func (p page) fill(sel, value string) {
	p.t.Helper()
	eval[bool](p, fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = %s; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`,
		jsString(sel), jsString(value)))
}

// submitToken types token into the sign-in form and submits it.
func (p page) submitToken(what, token string) {
	p.t.Helper()
	p.fill("#token", token)
	p.do(what, chromedp.Click(chromedp.CSS(".signin button[type=submit]")))
}

// jsString is s as a JavaScript (and JSON) string literal, markup
// unescaped.
func jsString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSpace(b.String())
}

// screenshot writes the page to name under -console-screenshots, if set.
func (p page) screenshot(name string) {
	p.t.Helper()
	if *consoleScreenshots == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(*consoleScreenshots, name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// TestConsoleBrowser drives the console in a real Chromium against a real
// server, one function through every page: a browser opening the API's
// address lands on the sign-in; a wrong token gets a clear message;
// signed in, it sees the deployed function (the cookie out of scripts'
// reach), then each console* step below runs on the function's page.
func TestConsoleBrowser(t *testing.T) {
	ts := startServer(t, "")
	ctx := startChromium(t)
	p := page{t: t, ctx: ctx}
	ts.createKitchensink("web-hello")

	p.do("opening the server's address", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	if loc := eval[string](p, "location.pathname"); loc != "/console/" {
		t.Fatalf("a browser at / is at %q, want /console/", loc)
	}
	p.screenshot("console-signin.png")
	p.submitToken("signing in with a wrong token", "owl_wrong_token")
	p.waitText("#signin-error", "That token was not accepted (UnrecognizedClientException")

	p.submitToken("signing in", testToken)
	p.waitText("#functions", "web-hello")
	row := p.waitText(`#functions tr[data-function="web-hello"]`, "128 MB")
	testkit.Contains(t, "the function's row", row, "provided.al2023")
	if cookie := eval[string](p, "document.cookie"); strings.Contains(cookie, "owl_session") {
		t.Fatalf("the session cookie is readable by scripts: %q", cookie)
	}

	p.do("opening the function", chromedp.Click(chromedp.CSS(`#functions a[href="#/fn/web-hello"]`)))
	p.waitText("#fn-name", "web-hello")

	consoleInvoke(t, ts, p)
	consoleConfigure(t, ts, p)
	consoleVersions(t, ts, p)
	consoleLogs(t, ts, p)
	consoleSessionEnds(t, ts, p)
	consoleActivity(t, ts, p)
	consoleListAndPhone(t, ts, p)
}

// consoleInvoke invokes the function from the test panel: the response, the log tail and
// the REPORT figures, cold then warm; markup in the event and the log is
// shown as text, never run.
func consoleInvoke(t *testing.T, ts *testServer, p page) {
	// An event and a log line with markup: shown as text, never run.
	const hostile = `<script>window.owlPwned=1</script><img src=x onerror="window.owlPwned=2">`
	p.fill("#payload", `{"action":"echo","print":`+jsString(hostile)+`}`)
	p.do("invoking", chromedp.Click(chromedp.CSS("#invoke")))
	p.waitText("#invoke-status", "Succeeded")
	p.waitText("#invoke-response", `"print":"<script>window.owlPwned=1</script><img src=x`)
	logTail := p.waitText("#invoke-log", "REPORT RequestId:")
	testkit.Contains(t, "the log tail", logTail, hostile, "START RequestId:", "Billed Duration:")
	testkit.Contains(t, "the first invocation's figures", p.waitText("#invoke-figures", "cold (init"), "Billed", " ms")
	if pwned := eval[bool](p, `window.owlPwned !== undefined || document.querySelector("#main script, #main img") !== null`); pwned {
		t.Fatal("markup in a payload or log line was run or inserted as HTML")
	}
	p.do("invoking again", chromedp.Click(chromedp.CSS("#invoke")))
	p.waitText("#invoke-start", "warm")
}

// consoleConfigure edits the memory: a good size is saved, a bad one refused inline with
// Lambda's error and the function left as it was; a write from the page
// without the CSRF header is refused.
func consoleConfigure(t *testing.T, ts *testServer, p page) {
	// Configuration: a good memory size is saved, a bad one refused
	// inline with Lambda's error, the function left as it was.
	p.fill("#memory", "256")
	p.do("saving 256 MB", chromedp.Click(chromedp.CSS("#save-config")))
	p.waitText("#config-status", "Saved: 256 MB")
	p.fill("#memory", "1")
	p.do("saving 1 MB", chromedp.Click(chromedp.CSS("#save-config")))
	p.waitText("#config-status", "ValidationException: ")
	fn, err := ts.sdk().GetFunctionConfiguration(t.Context(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("web-hello")})
	if err != nil || aws.ToInt32(fn.MemorySize) != 256 {
		t.Fatalf("after the console's changes the function has %v MB (%v), want 256", aws.ToInt32(fn.MemorySize), err)
	}

	// Without the CSRF header, even from the page itself, the cookie
	// reads and writes nothing.
	status := eval[float64](p, `fetch("/2015-03-31/functions/web-hello/configuration", {method: "PUT", body: '{"MemorySize":512}'}).then(r => r.status)`)
	if status != http.StatusForbidden {
		t.Fatalf("a write with the cookie and no CSRF header: %v, want 403", status)
	}
	if status := eval[float64](p, `fetch("/2015-03-31/functions/web-hello").then(r => r.status)`); status != http.StatusForbidden {
		t.Fatalf("a read with the cookie and no CSRF header: %v, want 403", status)
	}
}

// consoleVersions publishes versions, makes an alias and gives a second version a share
// of it with the slider, and uploads code (a file that is no zip is
// refused inline, the code unchanged).
func consoleVersions(t *testing.T, ts *testServer, p page) {
	// Versions, an alias, new code and the alias's weights.
	p.do("publishing", chromedp.Click(chromedp.CSS("#publish")))
	p.waitText("#versions-status", "Published version 1.")
	p.fill("#alias-name", "live")
	p.do("creating an alias", chromedp.Click(chromedp.CSS("#create-alias")))
	p.waitText("#versions-status", "Alias live made: version 1.")
	before := codeSha(t, ts, "web-hello")
	dir := t.TempDir()
	notZip, goodZip := filepath.Join(dir, "notes.zip"), filepath.Join(dir, "code.zip")
	if err := os.WriteFile(notZip, []byte("not a zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goodZip, kitchenZipWith(t, zipEntry{name: "console.txt", body: "uploaded from a browser"}), 0o644); err != nil {
		t.Fatal(err)
	}
	p.do("choosing a file that is no zip", chromedp.SetUploadFiles(chromedp.CSS("#code-file"), []string{notZip}))
	p.do("uploading it", chromedp.Click(chromedp.CSS("#upload")))
	p.waitText("#code-status", "InvalidParameterValueException: Could not unzip")
	if got := codeSha(t, ts, "web-hello"); got != before {
		t.Fatalf("a refused upload changed the code: %s, was %s", got, before)
	}
	p.do("choosing a zip", chromedp.SetUploadFiles(chromedp.CSS("#code-file"), []string{goodZip}))
	p.do("uploading it", chromedp.Click(chromedp.CSS("#upload")))
	p.waitText("#code-status", "Uploaded")
	after := codeSha(t, ts, "web-hello")
	if after == before || p.waitText("#code-sha", after) != after {
		t.Fatalf("after the upload the code is %s (was %s), the page shows %q", after, before, eval[string](p, `document.querySelector("#code-sha").textContent`))
	}
	p.do("downloading the code", chromedp.Click(chromedp.CSS("#download")))
	p.waitText("#download-status", "Downloaded.")
	p.do("publishing the new code", chromedp.Click(chromedp.CSS("#publish")))
	p.waitText("#versions-status", "Published version 2.")
	p.fill("#alias-live-extra", "2")
	p.fill("#alias-live-weight", "25")
	p.waitText("#alias-live-weight-shown", "25 %")
	p.do("saving the alias", chromedp.Click(chromedp.CSS("#alias-live-save")))
	p.waitText("#versions-status", "Alias live: version 1, 2 at 25 %.")
	alias, err := ts.sdk().GetAlias(t.Context(), &lambda.GetAliasInput{FunctionName: aws.String("web-hello"), Name: aws.String("live")})
	if err != nil || aws.ToString(alias.FunctionVersion) != "1" || alias.RoutingConfig == nil || alias.RoutingConfig.AdditionalVersionWeights["2"] != 0.25 {
		t.Fatalf("the alias after the console's change: %+v, %v", alias, err)
	}
}

// consoleLogs follows the live logs while the CLI and the API invoke the function,
// then one request's.
func consoleLogs(t *testing.T, ts *testServer, p page) {
	// Live logs, while the CLI invokes the function, then the API.
	p.do("following the logs", chromedp.Click(chromedp.CSS("#follow")))
	p.waitText("#log-status", "Following")
	if out, errOut, code := owlCLI(t, ts.URL, "invoke", "web-hello", "--data", `{"print":"followed-from-the-cli"}`); code != 0 {
		t.Fatalf("owl invoke: %d %s %s", code, out, errOut)
	}
	p.waitText("#log-lines", "followed-from-the-cli")
	first := ts.invoke("web-hello", `{"print":"followed-from-the-api-1"}`)
	p.waitText("#log-lines", "followed-from-the-api-1")
	p.do("stopping", chromedp.Click(chromedp.CSS("#follow")))
	p.waitText("#log-status", "Not following")
	id := requestIDOf(t, first.log)
	p.fill("#log-request", id)
	p.do("following one request", chromedp.Click(chromedp.CSS("#follow")))
	p.waitText("#log-status", "Following")
	ts.invoke("web-hello", `{"print":"followed-from-the-api-2"}`)
	lines := p.waitText("#log-lines", "REPORT RequestId: "+id)
	testkit.Contains(t, "one request's lines", lines, "followed-from-the-api-1")
	if strings.Contains(lines, "followed-from-the-api-2") || strings.Count(lines, "START RequestId:") != 1 {
		t.Fatalf("the logs of request %s show other requests: %q", id, lines)
	}
	p.do("stopping", chromedp.Click(chromedp.CSS("#follow")))
}

// consoleSessionEnds ends the session on the server: the next call returns to the sign-in,
// and what was typed in the invoke panel is still there after signing in
// again (by keyboard).
func consoleSessionEnds(t *testing.T, ts *testServer, p page) {
	// The session ends on the server: the next call returns to the
	// sign-in, and what was typed in the invoke panel is still there after.
	const draft = `{"action":"hello","name":"kept across sign-ins"}`
	p.fill("#payload", draft)
	endSession(t, ts, p)
	p.do("invoking without a session", chromedp.Click(chromedp.CSS("#invoke")))
	p.waitText("#signin-error", "Your session has ended")
	// By keyboard this time: the token and Enter.
	p.do("signing in again", chromedp.SendKeys(chromedp.CSS("#token"), testToken+kb.Enter))
	p.waitText("#fn-name", "web-hello")
	if got := eval[string](p, `document.querySelector("#payload").value`); got != draft {
		t.Fatalf("the invoke panel after signing in again has %q, want %q", got, draft)
	}
	p.do("invoking the kept event", chromedp.Click(chromedp.CSS("#invoke")))
	p.waitText("#invoke-response", "hello kept across sign-ins")
	// A reload keeps the tab's session: straight back to the function.
	p.do("reloading", chromedp.Reload())
	p.waitText("#fn-name", "web-hello")
}

// consoleActivity shows usage over two ranges, an asynchronous event (replayed from the
// page, its markup kept as text), a schedule and live metrics.
func consoleActivity(t *testing.T, ts *testServer, p page) {
	// What happened: usage, an asynchronous event (replayed from the
	// page) and a schedule.
	if _, err := ts.sdk().Invoke(t.Context(), &lambda.InvokeInput{FunctionName: aws.String("web-hello"),
		InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"print":"an event <b>not bold</b>"}`)}); err != nil {
		t.Fatal(err)
	}
	resp, body := ts.do(http.MethodPost, "/owl/v1/triggers", []byte(`{"Name":"nightly","Schedule":"cron(0 3 * * ? *)","Function":"web-hello"}`), nil)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("creating a trigger: %d %s", resp.StatusCode, body)
	}
	eval[string](p, `location.hash = "#/"; ""`)
	p.waitText("#functions", "web-hello")
	eval[string](p, `location.hash = "#/fn/web-hello"; ""`)
	p.waitText("#events", "an event <b>not bold</b>")
	p.waitText("#async-config", "Lambda's defaults (2 retries")
	p.waitText("#triggers", "cron(0 3 * * ? *)")
	if facts := p.waitText("#usage-facts", "GB-s"); strings.Contains(facts, "Invocations0") {
		t.Fatalf("the usage panel counts no invocations: %q", facts)
	}
	p.fill("#usage-range", "7d")
	p.waitJS(`(document.querySelector("#usage-panel svg") || {getAttribute: () => ""}).getAttribute("aria-label").includes("7 days")`, "the usage of 7 days")
	if facts := p.waitText("#usage-facts", "GB-s"); strings.Contains(facts, "Invocations0") {
		t.Fatalf("the usage panel counts no invocations over 7 days: %q", facts)
	}

	// Live metrics: an invocation from the API shows in the next scrape.
	p.waitText("#live-status", "every 2 s")
	ts.invoke("web-hello", `{"print":"counted live"}`)
	p.waitJS(`Number((document.querySelector("#live-invocations") || {}).textContent) >= 1`, "the live panel counting the invocation")
	p.do("replaying the last hour's events", chromedp.Click(chromedp.CSS("#replay")))
	p.waitText("#replay-status", "Replayed 1 event.")
	if pwned := eval[bool](p, `document.querySelector("#main b") !== null`); pwned {
		t.Fatal("markup in an event became an element")
	}
	resp, body = ts.do(http.MethodPut, "/2019-09-25/functions/web-hello/event-invoke-config",
		[]byte(`{"MaximumRetryAttempts":1,"DestinationConfig":{"OnFailure":{"Destination":"arn:owl:nats:::web.failed"}}}`), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("putting an event invoke config: %d %s", resp.StatusCode, body)
	}
	eval[string](p, `location.hash = "#/"; ""`)
	p.waitText("#functions", "web-hello")
	eval[string](p, `location.hash = "#/fn/web-hello"; ""`)
	testkit.Contains(t, "the async config", p.waitText("#async-config", "arn:owl:nats:::web.failed"), "Retries1")
	p.screenshot("console-function.png")
}

// consoleListAndPhone shows the list with the new memory and a p99, and fits a 360 px screen.
func consoleListAndPhone(t *testing.T, ts *testServer, p page) {
	// Back on the list: the new memory, and a p99 from the metrics.
	eval[string](p, `location.hash = "#/"`)
	p.waitText("#functions", "web-hello")
	p.fill("#filter", "no-such")
	p.waitText("#count", "0 of 1 function")
	p.fill("#filter", "WEB")
	p.waitText("#count", "1 of 1 function")
	row := p.waitText(`#functions tr[data-function="web-hello"]`, "256 MB")
	if !strings.HasSuffix(row, " ms") && !strings.HasSuffix(row, " s") {
		t.Fatalf("the function's row has no p99 after its invocations: %q", row)
	}
	p.screenshot("console-functions.png")

	// A phone's width: the page does not scroll sideways (wide tables
	// scroll in their own box).
	p.do("a 360 px wide screen", chromedp.EmulateViewport(360, 740))
	for _, route := range []string{"#/", "#/fn/web-hello"} {
		eval[string](p, fmt.Sprintf(`location.hash = %s; ""`, jsString(route)))
		p.waitText("main h1", map[string]string{"#/": "Functions", "#/fn/web-hello": "web-hello"}[route])
		if over := eval[float64](p, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
			t.Errorf("at 360 px, %s is %v px wider than the screen", route, over)
		}
	}
	p.screenshot("console-function-360.png")
}

// endSession signs the page's session out on the server, with the
// page's cookie and CSRF token, as another tab would.
func endSession(t testing.TB, ts *testServer, p page) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserPatience)
	defer cancel()
	cookies, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) ([]*network.Cookie, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{ts.URL}})
		if err != nil {
			return nil, err
		}
		return res.Cookies, nil
	})
	if err != nil {
		t.Fatalf("reading the browser's cookies: %v", err)
	}
	var c *http.Cookie
	for _, k := range cookies {
		if k.Name == "owl_session" {
			if !k.HTTPOnly || k.SameSite != network.CookieSameSiteStrict {
				t.Fatalf("the browser holds the session cookie as %+v: want HttpOnly and SameSite=Strict", k)
			}
			c = &http.Cookie{Name: k.Name, Value: k.Value}
		}
	}
	if c == nil {
		t.Fatalf("the browser has no session cookie: %+v", cookies)
	}
	csrf := eval[string](p, `sessionStorage.getItem("owl.csrf")`)
	if resp, body := ts.withCookie(http.MethodDelete, "/console/session", nil, c, csrf, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("signing the page's session out: %d %s", resp.StatusCode, body)
	}
}

// codeSha is a function's CodeSha256.
func codeSha(t testing.TB, ts *testServer, name string) string {
	t.Helper()
	fn, err := ts.sdk().GetFunctionConfiguration(t.Context(), &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(fn.CodeSha256)
}

// requestIDOf is the request id of an invocation's log.
func requestIDOf(t *testing.T, log string) string {
	t.Helper()
	_, rest, ok := strings.Cut(log, "START RequestId: ")
	if !ok {
		t.Fatalf("no START line in %q", log)
	}
	id, _, _ := strings.Cut(rest, " ")
	return strings.TrimSpace(id)
}

// BenchmarkConsoleFunctionsPage measures the console's functions page
// with 1000 functions in a real Chromium: from the route change to the
// table in the document, its API calls included (20 ListFunctions pages,
// the usage and /metrics), as the page itself times it (ms/render); the
// baseline in the same run is the bare API work, the same 20 pages
// listed by a Go client (ms/list). page-bytes is the console's weight:
// every file it loads, uncompressed.
//
//	go test -run '^$' -bench ConsoleFunctionsPage -benchtime 10x ./internal/server
func BenchmarkConsoleFunctionsPage(b *testing.B) {
	const n = 1000
	ts := startServer(b, "")
	weight := consoleWeight(b, ts)
	createFunctions(b, ts, n)

	p := page{t: b, ctx: startChromium(b)}
	p.do("opening the console", chromedp.Navigate(ts.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.submitToken("signing in", testToken)
	p.waitText("#count", fmt.Sprintf("%d functions", n))

	var renderMs, fetchMs, listMs float64
	b.ResetTimer()
	for i := range b.N {
		eval[string](p, fmt.Sprintf(`document.getElementById("main").dataset.renderMs = ""; location.hash = "#/?%d"; ""`, i))
		rows := eval[float64](p, `new Promise((ok) => { const t = setInterval(() => { const m = document.getElementById("main");
			if (m.dataset.renderMs) { clearInterval(t); ok(document.querySelectorAll("#functions tbody tr").length); } }, 5); })`)
		if rows != n {
			b.Fatalf("the page shows %v functions, want %d", rows, n)
		}
		for _, m := range []struct {
			field string
			sum   *float64
		}{{"renderMs", &renderMs}, {"fetchMs", &fetchMs}} {
			ms, err := strconv.ParseFloat(eval[string](p, `document.getElementById("main").dataset.`+m.field), 64)
			if err != nil {
				b.Fatal(err)
			}
			*m.sum += ms
		}

		start := time.Now()
		marker, count := "", 0
		for {
			q := "/2015-03-31/functions/?MaxItems=50"
			if marker != "" {
				q += "&Marker=" + marker
			}
			resp, body := ts.do(http.MethodGet, q, nil, nil)
			var page struct {
				Functions  []json.RawMessage
				NextMarker string
			}
			if resp.StatusCode != 200 || json.Unmarshal(body, &page) != nil {
				b.Fatalf("listing: %d %s", resp.StatusCode, body)
			}
			count += len(page.Functions)
			if marker = page.NextMarker; marker == "" {
				break
			}
		}
		listMs += float64(time.Since(start).Microseconds()) / 1000
		if count != n {
			b.Fatalf("listed %d functions, want %d", count, n)
		}
	}
	b.ReportMetric(renderMs/float64(b.N), "ms/render")
	b.ReportMetric(fetchMs/float64(b.N), "ms/fetch")
	b.ReportMetric(listMs/float64(b.N), "ms/list")
	b.ReportMetric(float64(weight), "page-bytes")
}

// consoleWeight is the bytes of every file the console serves.
func consoleWeight(b *testing.B, ts *testServer) int64 {
	b.Helper()
	var weight int64
	err := fs.WalkDir(console.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		resp, body := ts.do(http.MethodGet, "/console/"+strings.TrimSuffix(path, "index.html"), nil, map[string]string{"Authorization": ""})
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /console/%s: %d", path, resp.StatusCode)
		}
		weight += int64(len(body))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return weight
}

// createFunctions creates n functions page-0000… through the API, 8 at a
// time.
func createFunctions(b *testing.B, ts *testServer, n int) {
	b.Helper()
	work := make(chan int)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			var failed error
			for i := range work { // drained to the end even after a failure
				if failed != nil {
					continue
				}
				resp, body := ts.do(http.MethodPost, "/2015-03-31/functions", createBody(b, fmt.Sprintf("page-%04d", i), nil), nil)
				if resp.StatusCode != http.StatusCreated {
					failed = fmt.Errorf("creating page-%04d: %d %s", i, resp.StatusCode, body)
				}
			}
			errs <- failed
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	for range 8 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
