package server_test

import (
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/owl-project/owl/internal/config"
)

// TestConsoleHistoryCharts: in a real Chromium, a function's page and
// the dashboard chart the metric history: an SVG path per series with a
// point per step of the API's answer for the same range, the steps with
// invocations drawn above the axis and only those; another range redraws;
// markup in a function's name (typed into the address) stays text; the
// dashboard fits a 360 px screen. The sign-in, closed by a wrong token,
// says so.
func TestConsoleHistoryCharts(t *testing.T) {
	ts := startServer(t, "", func(c *config.Config) {
		c.MetricHistoryInterval = time.Second
		c.ConsoleSignInFailures, c.ConsoleSignInWindow = 1, 5*time.Second
	})
	p := page{t: t, ctx: startChromium(t)}
	ts.createKitchensink("chart-fn")
	for range 3 {
		ts.invoke("chart-fn", `{}`)
	}
	eventually(t, 30*time.Second, func() error {
		if _, tot := ts.history("function=chart-fn&since=1h"); tot.invocations != 3 {
			return fmt.Errorf("the history holds %d invocations, want 3", tot.invocations)
		}
		return nil
	})

	// One wrong token closes the sign-in (this server allows one in 5 s):
	// the right one is then refused with a clear message, and accepted
	// once the window has passed.
	p.do("opening the console", chromedp.Navigate(ts.URL+"/console/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	p.submitToken("signing in with a wrong token", "owl_a_wrong_guess")
	p.waitText("#signin-error", "That token was not accepted")
	p.submitToken("signing in while closed", testToken)
	p.waitText("#signin-error", "TooManyRequestsException: Too many wrong tokens from your address")
	p.waitJS(`(() => { const b = document.querySelector(".signin button[type=submit]"); if (b && !b.disabled) b.click(); return document.querySelector("#functions") !== null; })()`,
		"signing in once the window has passed")
	p.waitText("#functions", "chart-fn")
	eval[string](p, `location.hash = "#/fn/chart-fn"; ""`)
	p.waitText("#history-totals", "3 invocations, 0 errors, 0 throttles")
	checkChart(t, ts, p, "chart-fn")

	p.fill("#history-range", "24h")
	p.waitText("#history-totals", "over the last 24 hours")
	checkChart(t, ts, p, "chart-fn")

	eval[string](p, `location.hash = "#/dashboard"; ""`)
	p.waitText("main h1", "Dashboard")
	p.waitText("#history-totals", "3 invocations")
	checkChart(t, ts, p, "")
	p.screenshot("console-dashboard.png")
	// A phone's width: the charts shrink with the page, which does not
	// scroll sideways.
	p.do("a 360 px wide screen", chromedp.EmulateViewport(360, 740))
	if over := eval[float64](p, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
		t.Errorf("at 360 px, the dashboard is %v px wider than the screen", over)
	}
	if w := eval[float64](p, `document.getElementById("chart-invocations").getBoundingClientRect().width`); w <= 0 || w > 360 {
		t.Errorf("at 360 px, the invocations chart is %v px wide", w)
	}
	p.do("a desktop's width again", chromedp.EmulateViewport(1280, 900))

	// A name with markup, from the address bar: refused by the API, and
	// its message shown as text.
	eval[string](p, `location.hash = "#/fn/" + encodeURIComponent('<img src=x onerror="window.owlPwned=1">'); ""`)
	p.waitText("#main", "ValidationException")
	if pwned := eval[bool](p, `window.owlPwned !== undefined || document.querySelector("#main img, #main script") !== null`); pwned {
		t.Fatal("markup in a function name became an element")
	}
}

var pathPoint = regexp.MustCompile(`[ML](-?[\d.]+),(-?[\d.]+)`)

// checkChart compares the invocations chart the page shows with the
// API's answer for the same range and step: one point per step, and the
// points above the axis exactly the steps with invocations.
func checkChart(t *testing.T, ts *testServer, p page, function string) {
	t.Helper()
	p.waitJS(`document.querySelector('#chart-invocations path[data-series="invocations"]') !== null`, "the invocations chart")
	start := eval[string](p, `document.getElementById("history-charts").dataset.start`)
	step, _ := strconv.Atoi(eval[string](p, `document.getElementById("history-charts").dataset.step`))
	d := eval[string](p, `document.querySelector('#chart-invocations path[data-series="invocations"]').getAttribute("d")`)
	points := pathPoint.FindAllStringSubmatch(d, -1)
	from, err := time.Parse(time.RFC3339, start)
	if err != nil || step <= 0 {
		t.Fatalf("the chart's range: start %q (%v), step %d", start, err, step)
	}
	q := url.Values{"since": {start}, "until": {from.Add(time.Duration(len(points)*step) * time.Second).Format(time.RFC3339)},
		"step": {strconv.Itoa(step)}}
	if function != "" {
		q.Set("function", function)
	}
	rep, tot := ts.history(q.Encode())
	if len(points) != len(rep.Points) || tot.invocations != 3 {
		t.Fatalf("the chart has %d points; the API has %d for its range, with %d invocations (want 3)", len(points), len(rep.Points), tot.invocations)
	}
	if strings.Count(d, "M") != 1 {
		t.Errorf("the invocations line is broken into %d runs: %s", strings.Count(d, "M"), d)
	}
	axis, _ := strconv.ParseFloat(eval[string](p, `document.querySelectorAll("#chart-invocations line.axis")[1].getAttribute("y1")`), 64)
	for i, pt := range points {
		y, _ := strconv.ParseFloat(pt[2], 64)
		if above := y < axis-0.05; above != (rep.Points[i].Invocations > 0) {
			t.Errorf("point %d at y %v (the axis at %v); the API's step has %d invocations", i, y, axis, rep.Points[i].Invocations)
		}
	}
	if n := eval[int](p, `(document.querySelector('#chart-duration path[data-series="p99"]').getAttribute("d").match(/[ML]/g) || []).length`); n < 1 {
		t.Errorf("the duration chart draws no p99")
	}
}
