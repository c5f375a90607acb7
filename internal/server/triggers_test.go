package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/owl-project/owl/internal/testkit"
)

// firings returns the firing times of the schedule events fn received,
// in the order the event log has them.
func (ts *testServer) firings(fn string) []time.Time {
	var out []time.Time
	for _, e := range ts.eventLog(fn) {
		var ev struct {
			Time       time.Time `json:"time"`
			DetailType string    `json:"detail-type"`
		}
		if e.Type != "owl.schedule" || json.Unmarshal(e.Data, &ev) != nil || ev.DetailType != "Scheduled Event" {
			ts.t.Fatalf("not a schedule's event: %+v", e)
		}
		out = append(out, ev.Time)
	}
	return out
}

// TestSchedules: a 1-second rate schedule added with the real owl binary
// fires once a second, each firing one event in the event log and one
// run of the function; across a restart of owl serve no firing is lost
// and none is doubled; a schedule whose function is deleted stops and
// says so; bad schedules are refused with what is wrong.
//
// It is long because it walks one story across a restart of one server.
func TestSchedules(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startOwl(t, dataDir)
	first.createKitchensink("ticker")
	first.createKitchensink("doomed")

	stdout, stderr, code := owlCLI(t, first.URL, "trigger", "add", "tick", "--schedule", "rate(1 second)", "--function", "ticker")
	if code != 0 || !strings.Contains(stdout, "next firing") {
		t.Fatalf("owl trigger add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, stderr, code := owlCLI(t, first.URL, "trigger", "add", "orphan", "--schedule", "rate(1 second)", "--function", "doomed"); code != 0 {
		t.Fatalf("owl trigger add orphan: exit %d\n%s", code, stderr)
	}
	testkit.WaitFor(t, 2*time.Minute, "three firings", func() bool { return len(first.firings("ticker")) >= 3 })

	// The schedule of a deleted function stops and says so.
	if _, err := first.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("doomed")}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the orphan schedule to stop", func() bool {
		stdout, _, _ := owlCLI(t, first.URL, "trigger", "ls")
		for _, line := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(line, "orphan ") {
				return strings.Contains(line, "FUNCTION_NOT_FOUND")
			}
		}
		return false
	})

	// Restart: the schedule goes on from where it was.
	before := len(first.firings("ticker"))
	down := time.Now()
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.waitExit(t, time.Minute); code != 0 {
		t.Fatalf("owl serve exited %d\n%s", code, first.stderr.String())
	}
	second := startOwl(t, dataDir)
	downtime := time.Since(down)
	testkit.WaitFor(t, 2*time.Minute, "firings after the restart", func() bool { return len(second.firings("ticker")) >= before+5 })
	if _, stderr, code := owlCLI(t, second.URL, "trigger", "rm", "tick"); code != 0 {
		t.Fatalf("owl trigger rm: exit %d\n%s", code, stderr)
	}

	// Every second from the schedule's creation fired exactly once, the
	// seconds Owl was down too (late: a restart under a minute misses
	// nothing).
	times := second.firings("ticker")
	seen := map[time.Time]bool{}
	for i, at := range times {
		if seen[at] {
			t.Fatalf("firing %s stored twice", at)
		}
		seen[at] = true
		if i > 0 && at.Sub(times[i-1]) != time.Second && downtime < 50*time.Second {
			t.Fatalf("firing %d at %s follows %s: a firing was lost (down %s)", i, at, times[i-1], downtime)
		}
	}
	// Each firing ran the function once.
	testkit.WaitFor(t, 2*time.Minute, "every firing to run", func() bool { return countStarts(second.logText("ticker")) >= len(times) })
	t.Logf("%d firings, %d before the restart, down %s", len(times), before, downtime.Round(time.Millisecond))

	// Bad input: what is wrong, and nothing stored.
	for _, c := range []struct {
		method, path, body string
		status             int
		code, msg          string
	}{
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"rate(5 minute)","Function":"ticker"}`, 400, "InvalidParameterValueException", "~say 5 minutes"},
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"cron(0 25 * * ? *)","Function":"ticker"}`, 400, "InvalidParameterValueException", `~hours "25"`},
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"cron(0 10 * * * *)","Function":"ticker"}`, 400, "InvalidParameterValueException", "~must be ?"},
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"rate(1 minute)","Timezone":"Mars/Base","Function":"ticker"}`, 400, "InvalidParameterValueException", "~time zone"},
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"rate(1 minute)","Function":"nope"}`, 404, "ResourceNotFoundException", "~nope"},
		{"POST", "/owl/v1/triggers", `{"Name":"t","Schedule":"rate(1 minute)","Function":"ticker:7"}`, 404, "ResourceNotFoundException", "~ticker"},
		{"POST", "/owl/v1/triggers", `{"Name":"orphan","Schedule":"rate(1 minute)","Function":"ticker"}`, 409, "ResourceConflictException", "Trigger orphan already exists."},
		{"POST", "/owl/v1/triggers", `{"Name":"a b","Schedule":"rate(1 minute)","Function":"ticker"}`, 400, "InvalidParameterValueException", "~letters, digits"},
		{"GET", "/owl/v1/triggers/nope", "", 404, "ResourceNotFoundException", "Trigger not found: nope"},
		{"DELETE", "/owl/v1/triggers/tick", "", 404, "ResourceNotFoundException", "Trigger not found: tick"},
	} {
		resp, body := second.do(c.method, c.path, []byte(c.body), nil)
		wantError(t, resp, body, c.status, c.code, c.msg)
	}
	resp, body := second.do("GET", "/owl/v1/triggers", nil, nil)
	if resp.StatusCode != 200 || strings.Count(string(body), `"Name"`) != 1 {
		t.Errorf("after the refusals, the triggers are: %s", body)
	}
}

// slowBatch marks its sandbox busy, takes a while, then logs each record.
const slowBatch = `import time

def handler(event, context):
    open("/tmp/in-flight", "w").write("busy")
    time.sleep(2)
    for r in event["Records"]:
        print("GOT", r["body"])
`

// TestTriggersSurviveKill9: owl serve killed with SIGKILL while a
// subject trigger's batch runs and a 1-second schedule fires: after the
// restart the batch is delivered again (nothing it held is lost) and no
// firing of the schedule is stored twice.
func TestTriggersSurviveKill9(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startOwl(t, dataDir)
	first.createKitchensink("ticker")
	first.createZip("slow", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: slowBatch}))
	// A cold start and the 2 s batch pass Lambda's default 3 s on a loaded
	// machine: the redelivered batch would time out, retry and be dropped.
	first.updateConfig(&lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("slow"), Timeout: aws.Int32(60)})
	if _, stderr, code := owlCLI(t, first.URL, "trigger", "add", "--subject", "work.items", "--function", "slow", "--batch-size", "2", "--batch-window", "1"); code != 0 {
		t.Fatalf("owl trigger add --subject: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := owlCLI(t, first.URL, "trigger", "add", "tick", "--schedule", "rate(1 second)", "--function", "ticker"); code != 0 {
		t.Fatalf("owl trigger add tick: exit %d\n%s", code, stderr)
	}
	for _, item := range []string{`"item-1"`, `"item-2"`} {
		if _, stderr, code := owlCLI(t, first.URL, "events", "publish", "work.items", "--data", item); code != 0 {
			t.Fatalf("owl events publish: exit %d\n%s", code, stderr)
		}
	}
	inFlight(t, dataDir, "slow", "/tmp/in-flight")
	testkit.WaitFor(t, time.Minute, "some firings", func() bool { return len(first.firings("ticker")) >= 2 })
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.waitExit(t, 30*time.Second)

	second := startOwl(t, dataDir)
	testkit.WaitFor(t, 2*time.Minute, "the batch in flight at the kill to be delivered again", func() bool {
		log := second.logText("slow")
		return strings.Contains(log, `GOT "item-1"`) && strings.Contains(log, `GOT "item-2"`)
	})
	before := len(second.firings("ticker"))
	testkit.WaitFor(t, time.Minute, "firings after the restart", func() bool { return len(second.firings("ticker")) >= before+2 })
	seen := map[time.Time]bool{}
	for _, at := range second.firings("ticker") {
		if seen[at] {
			t.Fatalf("firing %s stored twice across the kill", at)
		}
		seen[at] = true
	}
}
