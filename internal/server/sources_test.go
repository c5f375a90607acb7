package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/nats-io/nats.go"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit"
)

// shipPython ships each order of its batch, reporting the ones marked to
// fail (ReportBatchItemFailures).
const shipPython = `import json

def handler(event, context):
    failures = []
    for r in event["Records"]:
        body = json.loads(r["body"])
        if body.get("fail"):
            failures.append({"itemIdentifier": r["messageId"]})
        else:
            print("SHIP", body["total"], r["subject"], r["eventSource"])
    return {"batchItemFailures": failures}
`

// TestSubjectTrigger: an event source mapping made with the AWS CLI reads
// a NATS subject: owl events publish stores events on it, the filter
// drops what it should, the function gets batches in Lambda's Records
// shape, an item it reports failed is retried and then sent to the
// OnFailure function, and every message it took is in the event log.
// Bad mappings get Lambda's errors.
func TestSubjectTrigger(t *testing.T) {
	t.Parallel()
	build(t)
	ts := startServer(t, "", asyncConfig)
	ts.createZip("ship", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: shipPython}))
	ts.createZip("dlq", interpreter(t, "python3"), "sink.handler",
		makeZip(t, zipEntry{name: "sink.py", body: "import json\n\ndef handler(event, context):\n    print('RECORD ' + json.dumps(event))\n"}))

	cli := findAWSCLI(t)
	cli.endpoint = ts.URL
	stdout, stderr, code := cli.run(t, t.TempDir(), "create-event-source-mapping", "--function-name", "ship",
		"--event-source-arn", "arn:owl:nats:::orders.*", "--batch-size", "5", "--maximum-batching-window-in-seconds", "1",
		"--function-response-types", "ReportBatchItemFailures", "--maximum-retry-attempts", "1",
		"--destination-config", `{"OnFailure":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:dlq"}}`,
		"--filter-criteria", `{"Filters":[{"Pattern":"{\"body\":{\"total\":[{\"numeric\":[\">\",10]}]}}"}]}`)
	var esm struct {
		UUID, State, EventSourceArn, FunctionArn string
		BatchSize                                int
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &esm) != nil || esm.UUID == "" || esm.State != "Enabled" ||
		esm.EventSourceArn != "arn:owl:nats:::orders.*" || esm.BatchSize != 5 {
		t.Fatalf("aws lambda create-event-source-mapping: exit %d\n%s\n%s", code, stdout, stderr)
	}

	for _, order := range []string{`{"total": 5}`, `{"total": 20}`, `{"total": 30}`, `{"total": 40, "fail": true}`, `{"total": 50}`, `{"total": 60}`} {
		stdout, stderr, code := owlCLI(t, ts.URL, "events", "publish", "orders.created", "--data", order)
		if code != 0 || !strings.HasPrefix(stdout, "stored as message ") {
			t.Fatalf("owl events publish: exit %d\n%s\n%s", code, stdout, stderr)
		}
	}
	testkit.WaitFor(t, 2*time.Minute, "the orders to ship", func() bool {
		log := ts.logText("ship")
		for _, total := range []int{20, 30, 50, 60} {
			if !strings.Contains(log, fmt.Sprintf("SHIP %d orders.created owl:nats", total)) {
				return false
			}
		}
		return true
	})
	testkit.WaitFor(t, 2*time.Minute, "the failing order at the OnFailure function", func() bool {
		return strings.Contains(ts.logText("dlq"), `"condition": "RetryAttemptsExhausted"`)
	})
	log := ts.logText("ship")
	if strings.Contains(log, "SHIP 5 ") {
		t.Errorf("the filter let the order of 5 through:\n%s", log)
	}
	var rec struct {
		RequestContext struct{ ApproximateInvokeCount int } `json:"requestContext"`
		Record         struct{ Body, Subject string }       `json:"record"`
	}
	dlqLog := ts.logText("dlq")
	line := dlqLog[strings.Index(dlqLog, "RECORD ")+len("RECORD "):]
	line = line[:strings.Index(line, "\n")]
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.RequestContext.ApproximateInvokeCount != 2 ||
		!strings.Contains(rec.Record.Body, `"fail":true`) || rec.Record.Subject != "orders.created" {
		t.Fatalf("the OnFailure record: %s (%v)", line, err)
	}
	if s := ts.SourceStats(); s.Filtered != 1 || s.Failed != 1 {
		t.Errorf("stats %+v, want 1 filtered and 1 given up", s)
	}
	// Each message the mapping took is one event of the log (a retry is
	// the same event).
	if n := strings.Count(fmt.Sprint(ts.eventLog("ship")), "owl.nats"); n != 5 {
		t.Errorf("the event log has %d records of the 5 messages ship took", n)
	}

	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"EventSourceArn":"arn:aws:sqs:us-east-1:000000000000:q","FunctionName":"ship"}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::owl.internal","FunctionName":"ship"}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::a.>.b","FunctionName":"ship"}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"nope"}`, 404, "ResourceNotFoundException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"ship","BatchSize":0}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"ship","MaximumBatchingWindowInSeconds":301}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"ship","FilterCriteria":{"Filters":[{"Pattern":"{\"a\": 1}"}]}}`, 400, "InvalidParameterValueException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"ship","FunctionResponseTypes":["ReportEverything"]}`, 400, "ValidationException"},
		{`{"EventSourceArn":"arn:owl:nats:::a","FunctionName":"ship","DestinationConfig":{"OnFailure":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:nope"}}}`, 400, "InvalidParameterValueException"},
	} {
		resp, body := ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(c.body), nil)
		if resp.StatusCode != c.status || resp.Header.Get("X-Amzn-Errortype") != c.code {
			t.Errorf("%s: %d %s %s, want %d %s", c.body, resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"), body, c.status, c.code)
		}
	}
	resp, body := ts.do("GET", "/2015-03-31/event-source-mappings/00000000-0000-4000-8000-000000000000", nil, nil)
	wantError(t, resp, body, 404, "ResourceNotFoundException", "~does not exist")
	resp, body = ts.do("POST", "/owl/v1/events/publish", []byte(`{"Subject":"orders.*","Data":{}}`), nil)
	wantError(t, resp, body, 400, "InvalidParameterValueException", "~without wildcards")

	if stdout, stderr, code := cli.run(t, t.TempDir(), "delete-event-source-mapping", "--uuid", esm.UUID); code != 0 || !strings.Contains(stdout, "Deleting") {
		t.Fatalf("aws lambda delete-event-source-mapping: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A mapping whose function is deleted stops and says so.
	ts.createKitchensink("doomed")
	stdout, stderr, code = owlCLI(t, ts.URL, "trigger", "add", "--subject", "doomed.in", "--function", "doomed")
	uuid, _, _ := strings.Cut(stdout, ":")
	if code != 0 || len(uuid) != 36 {
		t.Fatalf("owl trigger add --subject: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := ts.sdk().DeleteFunction(context.Background(), &lambda.DeleteFunctionInput{FunctionName: aws.String("doomed")}); err != nil {
		t.Fatal(err)
	}
	owlCLI(t, ts.URL, "events", "publish", "doomed.in", "--data", "{}")
	testkit.WaitFor(t, time.Minute, "the orphan mapping to stop", func() bool {
		_, body := ts.do("GET", "/2015-03-31/event-source-mappings/"+uuid, nil, nil)
		return strings.Contains(string(body), `"State":"Disabled"`) && strings.Contains(string(body), "Function not found")
	})
}

// TestNATSListener: with --nats-listen, a NATS client outside Owl signs in
// as user owl with the password from the credentials and publishes onto a
// subject a trigger reads, and the function runs; the system's and Owl's
// own subjects are closed to it, and a wrong password is refused.
func TestNATSListener(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	ts := startServer(t, "", asyncConfig, func(c *config.Config) { c.NATSListen = addr })
	ts.createZip("ship", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: shipPython}))
	if _, stderr, code := owlCLI(t, ts.URL, "trigger", "add", "--subject", "orders.*", "--function", "ship"); code != 0 {
		t.Fatalf("owl trigger add --subject: exit %d\n%s", code, stderr)
	}
	if _, err := nats.Connect("nats://"+addr, nats.UserInfo("owl", "wrong")); err == nil {
		t.Fatal("a wrong NATS password was let in")
	}
	errs := make(chan error, 10)
	nc, err := nats.Connect("nats://"+addr, nats.UserInfo("owl", ts.Credentials().NATSPassword),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("orders.external", []byte(`{"total": 77}`)); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the external client's order to ship", func() bool {
		return strings.Contains(ts.logText("ship"), "SHIP 77 orders.external owl:nats")
	})
	for _, subject := range []string{"owl.events.ship", "$JS.API.STREAM.DELETE.OWL_EVENTS"} {
		if err := nc.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("publish on %s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("publish on %s was not refused", subject)
		}
	}
	// Owl's own replies (its JetStream API answers hold function
	// configurations) are closed to listeners too.
	if _, err := nc.SubscribeSync("_OWL_INBOX.>"); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("subscribing to Owl's inbox: %v, want a permissions violation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a client subscribed to Owl's own inbox")
	}
	if _, err := ts.sdk().GetFunction(context.Background(), &lambda.GetFunctionInput{FunctionName: aws.String("ship")}); err != nil {
		t.Fatalf("Owl's own store after the refused publishes: %v", err)
	}
}
