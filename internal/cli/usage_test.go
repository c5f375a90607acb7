package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
)

// TestUsageCommand checks what `owl usage` asks the API (its flags become
// the query) and how it prints the answer: a table with a TOTAL row, or
// JSON lines; a bad --by is refused before any request.
func TestUsageCommand(t *testing.T) {
	var got []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/owl/v1/usage" || r.Header.Get("Authorization") != "Bearer "+testToken {
			http.Error(w, "unexpected "+r.URL.Path, http.StatusBadRequest)
			return
		}
		got = append(got, r.URL.Query())
		_ = json.NewEncoder(w).Encode(lambdawire.UsageReport{Usage: []lambdawire.UsageRow{
			{Function: "a", Period: "2026-12-06T10:00:00Z", Invocations: 3, Errors: 1, BilledMs: 1500, MBMs: 1500 * 1024, GBSeconds: 1.5},
			{Function: "b", Period: "2026-12-06T10:00:00Z", Invocations: 1, BilledMs: 2, MBMs: 256, GBSeconds: 0.00025},
		}})
	}))
	defer srv.Close()
	t.Setenv("OWL_TOKEN", testToken)

	before := time.Now()
	out, errOut, code := runOwl(t, srv.URL, "", "usage", "--since", "2h", "--function", "a", "--by", "hour")
	after := time.Now()
	if code != 0 {
		t.Fatalf("owl usage: exit %d: %s", code, errOut)
	}
	q := got[0]
	if q.Get("function") != "a" || q.Get("by") != "hour" || q.Get("until") != "" {
		t.Errorf("query = %v", q)
	}
	since, err := time.Parse(time.RFC3339Nano, q.Get("since"))
	if err != nil || since.Before(before.Add(-2*time.Hour)) || since.After(after.Add(-2*time.Hour)) {
		t.Errorf("since = %q (%v), want two hours before %v", q.Get("since"), err, before)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[0], "PERIOD") {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[3]); strings.Join(f, " ") != "TOTAL 4 1 1502 1.500" {
		t.Errorf("total row = %q, want TOTAL 4 1 1502 1.500", lines[3])
	}

	out, errOut, code = runOwl(t, srv.URL, "", "usage", "--json")
	if code != 0 {
		t.Fatalf("owl usage --json: exit %d: %s", code, errOut)
	}
	var row lambdawire.UsageRow
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &row); err != nil || row.Function != "a" || row.MBMs != 1500*1024 {
		t.Errorf("first JSON line = %q (%v)", out, err)
	}
	if len(got[1]) != 0 {
		t.Errorf("no flags sent query %v", got[1])
	}

	_, errOut, code = runOwl(t, srv.URL, "", "usage", "--by", "week")
	if code == 0 || !strings.Contains(errOut, "week") || len(got) != 2 {
		t.Errorf("--by week: exit %d, %q, %d requests", code, errOut, len(got))
	}
}
