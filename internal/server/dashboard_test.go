package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/owl-project/owl/internal/testkit"
)

// dashboardPath is the Grafana dashboard the repository ships for Owl's
// metrics.
const dashboardPath = "../../deploy/grafana/owl-dashboard.json"

// TestDashboardMetricsExist: every metric the Grafana dashboard's PromQL
// names is in the /metrics of a real server, after the one invocation that
// makes the per-function series (a cold start) appear.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	ts := startServer(t, "")
	ts.createKitchensink("dash")
	ts.invoke("dash", `{}`) // cold: invocations, duration, init and cold-start series
	resp, body := ts.do("GET", "/metrics", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	exposed := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		exposed[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
	}
	used := map[string]bool{}
	for _, e := range exprs {
		names := promqlMetricNames(e)
		if len(names) == 0 {
			t.Errorf("found no metric name in %q", e)
		}
		for _, n := range names {
			used[n] = true
			if !exposed[n] {
				t.Errorf("the dashboard's %q uses %s, which /metrics does not expose", e, n)
			}
		}
	}
	// The extraction found the families the dashboard is about.
	for _, n := range []string{"owl_invocations_total", "owl_invocation_duration_seconds_bucket",
		"owl_init_duration_seconds_bucket", "owl_cold_starts_total", "owl_environments", "owl_async_queue_depth"} {
		if !used[n] {
			t.Errorf("the dashboard never uses %s (used: %v)", n, sortedKeys(used))
		}
	}
}

// TestDashboardExpressionsParse: Prometheus' own parser (promtool check
// rules, offline) accepts every expression of the dashboard, with
// Grafana's variables replaced as Grafana would.
func TestDashboardExpressionsParse(t *testing.T) {
	t.Parallel()
	exprs := dashboardExprs(t)
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testkit.Skipf(t, "no promtool (apt-get install prometheus) to parse the dashboard's PromQL with")
	}
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		if strings.HasPrefix(e, "label_values(") {
			continue // Grafana's, not PromQL
		}
		rules = append(rules, rule{Record: "owl_dashboard:expr_" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Expr: grafanaVars(e)})
	}
	// JSON is YAML: promtool reads the rules file as is.
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "owl-dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's expressions: %v\n%s", err, out)
	}
}

// dashboardExprs returns every query of the dashboard: its panels' targets
// (rows' nested panels included) and its template variables' queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Title   string
		Targets []struct{ Expr string }
		Panels  []json.RawMessage
	}
	var dash struct {
		Panels     []json.RawMessage
		Templating struct {
			List []struct {
				Type  string
				Query json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var exprs []string
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatalf("%s: a panel: %v", dashboardPath, err)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has a target without an expression", p.Title)
				}
				exprs = append(exprs, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil { // older dashboards: the query is a plain string
			_ = json.Unmarshal(v.Query, &q.Query)
		}
		exprs = append(exprs, q.Query)
	}
	if len(exprs) < 10 {
		t.Fatalf("%s: only %d expressions", dashboardPath, len(exprs))
	}
	return exprs
}

// grafanaVars replaces the Grafana variables the dashboard uses with what
// Grafana would put there.
func grafanaVars(e string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "${function}", ".*", "$function", ".*").Replace(e)
}

var (
	// promqlGroupings are label lists (by, without, on, ignoring,
	// group_left, group_right): label names, not metrics.
	promqlGroupings = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// promqlTokens are string literals, label matchers, ranges, numbers
	// and identifiers.
	promqlTokens   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\{[^}]*\}|\[[^\]]*\]|[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?|[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promqlMetricNames returns the metric names a PromQL expression (or a
// Grafana label_values query) selects: the identifiers that are neither
// functions, aggregations, keywords nor inside label matchers, label lists,
// strings or ranges.
func promqlMetricNames(e string) []string {
	e = promqlGroupings.ReplaceAllString(grafanaVars(e), " ")
	var names []string
	for _, loc := range promqlTokens.FindAllStringIndex(e, -1) {
		tok := e[loc[0]:loc[1]]
		c := tok[0]
		if c == '"' || c == '\'' || c == '{' || c == '[' || (c >= '0' && c <= '9') || promqlKeywords[strings.ToLower(tok)] {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if strings.HasPrefix(e, "label_values(") && strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " "), ")") {
			continue // label_values(metric, label): the label
		}
		names = append(names, tok)
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
