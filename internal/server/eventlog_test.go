package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/testkit"
)

// TestEventLogAndReplay: the events Owl accepted are listed and shown as
// CloudEvents records through the real owl binary; a time range of one
// function's events is replayed to another function, which runs each
// with a new request id (its record names the original), held back by
// the target's concurrency like any event; bad requests get clear errors.
//
// It is long because it walks one story (accept, list, show, replay,
// refuse) on one server, which starts once for all of it.
func TestEventLogAndReplay(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "", asyncConfig)
	ts.createKitchensink("orders")
	ts.createKitchensink("orders-fixed")
	ctx := context.Background()

	ts.invokeEvent("orders", `{"print":"before the range"}`)
	testkit.WaitFor(t, 2*time.Minute, "the first event to run", func() bool { return strings.Contains(ts.logText("orders"), "before the range") })
	since := time.Now()
	var ids []string
	for i := range 3 {
		id := ts.invokeEvent("orders", fmt.Sprintf(`{"print":"order %d"}`, i))
		ids = append(ids, id)
		ts.waitRuns("orders", id, 1)
	}
	until := time.Now()
	ts.invokeEvent("orders", `{"print":"after the range"}`)

	// owl events ls: the range's three events, oldest first.
	stdout, stderr, code := owlCLI(t, ts.URL, "events", "ls", "--function", "orders",
		"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano))
	if code != 0 {
		t.Fatalf("owl events ls: exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("owl events ls: want a header and 3 events:\n%s", stdout)
	}
	for i, id := range ids {
		if f := strings.Fields(lines[i+1]); len(f) != 5 || f[1] != id || f[2] != "orders" || f[3] != "owl.invoke" || f[4] != "-" {
			t.Errorf("owl events ls line %d: %q, want event %s of orders", i+1, lines[i+1], id)
		}
	}

	// owl events show: the CloudEvents record in its JSON format.
	stdout, stderr, code = owlCLI(t, ts.URL, "events", "show", ids[1])
	var ce map[string]any
	if code != 0 || json.Unmarshal([]byte(stdout), &ce) != nil {
		t.Fatalf("owl events show: exit %d\n%s\n%s", code, stdout, stderr)
	}
	data, _ := ce["data"].(map[string]any)
	if ce["specversion"] != "1.0" || ce["id"] != ids[1] || ce["type"] != "owl.invoke" || ce["subject"] != "orders" ||
		ce["datacontenttype"] != "application/json" || data["print"] != "order 1" || ce["time"] == nil || ce["source"] == nil {
		t.Fatalf("owl events show %s:\n%s", ids[1], stdout)
	}

	// The target holds the replayed events while it has no concurrency.
	if _, err := ts.sdk().PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{
		FunctionName: aws.String("orders-fixed"), ReservedConcurrentExecutions: aws.Int32(0),
	}); err != nil {
		t.Fatal(err)
	}
	throttled := ts.EventStats().Throttled
	stdout, stderr, code = owlCLI(t, ts.URL, "events", "replay", "--function", "orders",
		"--since", since.Format(time.RFC3339Nano), "--until", until.Format(time.RFC3339Nano), "--to", "orders-fixed")
	if code != 0 || !strings.Contains(stdout, "replayed 3 events of orders to orders-fixed") {
		t.Fatalf("owl events replay: exit %d\n%s\n%s", code, stdout, stderr)
	}
	replays := regexp.MustCompile(`(?m)^(\S+) replays (\S+)$`).FindAllStringSubmatch(stdout, -1)
	if len(replays) != 3 {
		t.Fatalf("owl events replay listed %d events:\n%s", len(replays), stdout)
	}
	testkit.WaitFor(t, time.Minute, "the replayed events to be throttled", func() bool { return ts.EventStats().Throttled > throttled })
	if n := countStarts(ts.logText("orders-fixed")); n != 0 {
		t.Fatalf("orders-fixed ran %d replayed events with reserved concurrency 0", n)
	}
	if _, err := ts.sdk().DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("orders-fixed")}); err != nil {
		t.Fatal(err)
	}
	for i, r := range replays {
		newID, orig := r[1], r[2]
		if orig != ids[i] || newID == orig {
			t.Fatalf("replay %d: %s replays %s, want a new id replaying %s", i, newID, orig, ids[i])
		}
		ts.waitRuns("orders-fixed", newID, 1)
	}
	log := ts.logText("orders-fixed")
	for i := range 3 {
		if !strings.Contains(log, fmt.Sprintf("order %d", i)) {
			t.Errorf("orders-fixed's log lacks order %d:\n%s", i, log)
		}
	}
	if strings.Contains(log, "before the range") || strings.Contains(log, "after the range") {
		t.Errorf("the replay went past its range:\n%s", log)
	}

	// The replays are in the log as replays, naming the originals.
	stdout, _, code = owlCLI(t, ts.URL, "events", "ls", "--function", "orders-fixed")
	if code != 0 || strings.Count(stdout, "owl.invoke.replay") != 3 {
		t.Fatalf("owl events ls --function orders-fixed:\n%s", stdout)
	}
	for _, id := range ids {
		if !strings.Contains(stdout, id) {
			t.Errorf("no replay record names %s:\n%s", id, stdout)
		}
	}

	// Bad requests: a clear error, nothing replayed.
	replayed := ts.EventStats().Replayed
	for _, c := range []struct {
		method, path, body string
		status             int
		code, msg          string
	}{
		{"POST", "/owl/v1/events/replay", `{"Function":"orders"}`, 400, "InvalidParameterValueException", "~Since is required"},
		{"POST", "/owl/v1/events/replay", `{"Since":"2026-01-01T00:00:00Z"}`, 400, "InvalidParameterValueException", "~Function is required"},
		{"POST", "/owl/v1/events/replay", `{"Function":"orders","Since":"yesterday"}`, 400, "InvalidParameterValueException", "~not an RFC 3339 time"},
		{"POST", "/owl/v1/events/replay", `{"Function":"orders","Since":"2026-01-02T00:00:00Z","Until":"2026-01-01T00:00:00Z"}`, 400, "InvalidParameterValueException", "~is before Since"},
		{"POST", "/owl/v1/events/replay", `{"Function":"orders","Since":"2026-01-01T00:00:00Z","To":"nope"}`, 404, "ResourceNotFoundException", "~nope"},
		{"POST", "/owl/v1/events/replay", `{"Function":"orders","Since":"2026-01-01T00:00:00Z","To":"orders-fixed:9"}`, 404, "ResourceNotFoundException", "~orders-fixed"},
		{"POST", "/owl/v1/events/replay", `{`, 400, "InvalidRequestContentException", "~Could not parse request body"},
		{"GET", "/owl/v1/events?limit=0", "", 400, "InvalidParameterValueException", "~limit must be"},
		{"GET", "/owl/v1/events?marker=x", "", 400, "InvalidParameterValueException", "~marker"},
		{"GET", "/owl/v1/events?function=a.b", "", 400, "ValidationException", "~a.b"},
		{"GET", "/owl/v1/events?since=noon", "", 400, "InvalidParameterValueException", "~not an RFC 3339 time"},
		{"GET", "/owl/v1/events/00000000-0000-0000-0000-000000000000", "", 404, "ResourceNotFoundException", "~Event not found"},
		{"GET", "/owl/v1/events/a.b", "", 400, "InvalidParameterValueException", "~not an event id"},
	} {
		resp, body := ts.do(c.method, c.path, []byte(c.body), nil)
		wantError(t, resp, body, c.status, c.code, c.msg)
	}
	if ts.EventStats().Replayed != replayed {
		t.Error("a refused replay stored events")
	}
	// Without a token: refused like every other operation.
	resp, err := http.Get(ts.URL + "/owl/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, resp, body, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
}
