package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/config"
	"github.com/owl-project/owl/internal/testkit"
)

// TestStreamTrigger: an event source mapping reads a JetStream stream of
// the user's own (arn:owl:jetstream:::<stream>/<filter>) from its start
// (TRIM_HORIZON), fed by a NATS client through --nats-listen: the
// function gets batches, an item it reports failed goes to the OnFailure
// function after its retry, and deleting the mapping deletes its
// consumer on the user's stream; a mapping AT_TIMESTAMP reads from its
// time on. Owl's own streams, streams that are not there and malformed
// ARNs are refused.
func TestStreamTrigger(t *testing.T) {
	t.Parallel()
	addr := testkit.FreeAddr(t)
	ts := startServer(t, "", asyncConfig, func(c *config.Config) { c.NATSListen = addr })
	ts.createZip("ship", interpreter(t, "python3"), "app.handler", makeZip(t, zipEntry{name: "app.py", body: shipPython}))
	ts.createZip("dlq", interpreter(t, "python3"), "sink.handler",
		makeZip(t, zipEntry{name: "sink.py", body: "import json\n\ndef handler(event, context):\n    print('RECORD ' + json.dumps(event))\n"}))

	ctx := context.Background()
	// The user makes the stream through Owl (owl stream add).
	stdout, stderr, code := owlCLI(t, ts.URL, "stream", "add", "SHOP", "--subjects", "shop.>", "--max-age", "72h", "--max-mb", "8")
	if code != 0 || !strings.Contains(stdout, "SHOP: shop.>, up to 8 MiB (arn:owl:jetstream:::SHOP)") {
		t.Fatalf("owl stream add: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stream, err := ts.JetStream().Stream(ctx, "SHOP")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := stream.CachedInfo().Config; cfg.MaxBytes != 8<<20 || cfg.MaxAge != 72*time.Hour || cfg.Storage != jetstream.FileStorage {
		t.Errorf("the stream owl stream add made: %+v", cfg)
	}
	nc, err := nats.Connect("nats://"+addr, nats.UserInfo("owl", ts.Credentials().NATSPassword))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publish := func(subject, data string) {
		t.Helper()
		if err := nc.Publish(subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Before the mapping: TRIM_HORIZON reads them.
	publish("shop.orders.created", `{"total": 20}`)
	publish("shop.orders.created", `{"total": 40, "fail": true}`)
	publish("shop.refunds.created", `{"total": 99}`) // outside the filter
	testkit.WaitFor(t, 30*time.Second, "the stream to hold the messages", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 3
	})
	time.Sleep(10 * time.Millisecond)
	mid := time.Now() // AT_TIMESTAMP from here skips the three above

	const arn = "arn:owl:jetstream:::SHOP/shop.orders.*"
	resp, body := ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(`{"EventSourceArn":"`+arn+`","FunctionName":"ship",
		"StartingPosition":"TRIM_HORIZON","BatchSize":5,"MaximumBatchingWindowInSeconds":1,
		"FunctionResponseTypes":["ReportBatchItemFailures"],"MaximumRetryAttempts":1,
		"DestinationConfig":{"OnFailure":{"Destination":"arn:aws:lambda:us-east-1:000000000000:function:dlq"}}}`), nil)
	var esm struct {
		UUID, State, EventSourceArn, StartingPosition string
		LastModified                                  float64
	}
	if resp.StatusCode != 202 || json.Unmarshal(body, &esm) != nil || esm.EventSourceArn != arn || esm.StartingPosition != "TRIM_HORIZON" ||
		esm.LastModified < float64(mid.Unix()) {
		t.Fatalf("CreateEventSourceMapping: %d %s", resp.StatusCode, body)
	}
	publish("shop.orders.created", `{"total": 30}`)
	testkit.WaitFor(t, 2*time.Minute, "the orders to ship", func() bool {
		log := ts.logText("ship")
		return strings.Contains(log, "SHIP 20 shop.orders.created owl:jetstream") && strings.Contains(log, "SHIP 30 shop.orders.created owl:jetstream")
	})
	testkit.WaitFor(t, 2*time.Minute, "the failing order at the OnFailure function", func() bool {
		return strings.Contains(ts.logText("dlq"), `"condition": "RetryAttemptsExhausted"`)
	})
	if log := ts.logText("ship"); strings.Contains(log, "SHIP 99") {
		t.Errorf("the subject filter let a refund through:\n%s", log)
	}
	if dlq := ts.logText("dlq"); !strings.Contains(dlq, `\"fail\": true`) || !strings.Contains(dlq, `"eventSourceArn": "`+arn+`"`) {
		t.Errorf("the OnFailure record:\n%s", dlq)
	}

	consumer := "esm-" + esm.UUID
	if _, err := stream.Consumer(ctx, consumer); err != nil {
		t.Fatalf("the mapping's consumer on the user's stream: %v", err)
	}
	resp, body = ts.do("DELETE", "/2015-03-31/event-source-mappings/"+esm.UUID, nil, nil)
	if resp.StatusCode != 202 {
		t.Fatalf("DeleteEventSourceMapping: %d %s", resp.StatusCode, body)
	}
	if _, err := stream.Consumer(ctx, consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer after DeleteEventSourceMapping: %v, want it gone", err)
	}

	// AT_TIMESTAMP starts at the first message stored at or after the
	// time: the order of 30, not the one of 20 before it.
	resp, body = ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(fmt.Sprintf(`{"EventSourceArn":"%s","FunctionName":"ship",
		"StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":%.3f}`, arn, float64(mid.UnixMilli())/1000)), nil)
	if resp.StatusCode != 202 || !strings.Contains(string(body), `"StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":`) {
		t.Fatalf("CreateEventSourceMapping AT_TIMESTAMP: %d %s", resp.StatusCode, body)
	}
	testkit.WaitFor(t, 2*time.Minute, "the order of 30 to ship again", func() bool {
		return strings.Count(ts.logText("ship"), "SHIP 30 ") == 2
	})
	if n := strings.Count(ts.logText("ship"), "SHIP 20 "); n != 1 {
		t.Errorf("AT_TIMESTAMP read the order of 20 from before its time: shipped %d times", n)
	}
	// owl trigger add --stream, from the start of the stream.
	stdout, stderr, code = owlCLI(t, ts.URL, "trigger", "add", "--stream", "SHOP/shop.refunds.*", "--function", "ship",
		"--starting-position", "TRIM_HORIZON")
	if code != 0 || !strings.Contains(stdout, "arn:owl:jetstream:::SHOP/shop.refunds.* → ship") {
		t.Fatalf("owl trigger add --stream: exit %d\n%s\n%s", code, stdout, stderr)
	}
	testkit.WaitFor(t, 2*time.Minute, "the refund to reach ship", func() bool {
		return strings.Contains(ts.logText("ship"), "SHIP 99 shop.refunds.created owl:jetstream")
	})

	resp, body = ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(`{"EventSourceArn":"`+arn+`","FunctionName":"ship","StartingPosition":"AT_TIMESTAMP"}`), nil)
	wantError(t, resp, body, 400, "InvalidParameterValueException", "~StartingPositionTimestamp is required")
	resp, body = ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(`{"EventSourceArn":"`+arn+`","FunctionName":"ship","StartingPosition":"EARLIEST"}`), nil)
	wantError(t, resp, body, 400, "ValidationException", "~AT_TIMESTAMP")

	for _, c := range []struct{ arn, want string }{
		{"arn:owl:jetstream:::NOPE", "Stream not found: arn:owl:jetstream:::NOPE"},
		{"arn:owl:jetstream:::OWL_EVENTS", "Owl's own"},
		{"arn:owl:jetstream:::KV_OWL_MAPPINGS", "Owl's own"},
		{"arn:owl:jetstream:::shop.orders", "stream name has no"},
		{"arn:owl:jetstream:::SHOP/a..b", "empty token"},
		{"arn:owl:jetstream:::SHOP/elsewhere.x", "Cannot read"},
	} {
		resp, body := ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(`{"EventSourceArn":"`+c.arn+`","FunctionName":"ship"}`), nil)
		wantError(t, resp, body, 400, "InvalidParameterValueException", "~"+c.want)
	}

	// owl stream ls counts what it holds; owl stream rm removes it, and
	// the trigger still reading it stops, saying why.
	stdout, stderr, code = owlCLI(t, ts.URL, "stream", "ls")
	if code != 0 || !regexp.MustCompile(`(?m)^SHOP +shop\.> +4 +\d+ +8388608 +72h0m0s$`).MatchString(stdout) {
		t.Fatalf("owl stream ls: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, stderr, code = owlCLI(t, ts.URL, "stream", "rm", "SHOP"); code != 0 {
		t.Fatalf("owl stream rm: exit %d\n%s", code, stderr)
	}
	if _, err := ts.JetStream().Stream(ctx, "SHOP"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the stream after owl stream rm: %v", err)
	}
	waitMappingStopped(t, ts, "arn:owl:jetstream:::SHOP/shop.refunds.*")
	resp, body = ts.do("GET", "/owl/v1/streams/SHOP", nil, nil)
	wantError(t, resp, body, 404, "ResourceNotFoundException", "Stream not found: arn:owl:jetstream:::SHOP")
}

// waitMappingStopped waits for the one mapping reading arn to be disabled
// because its stream is gone.
func waitMappingStopped(t *testing.T, ts *testServer, arn string) {
	t.Helper()
	testkit.WaitFor(t, time.Minute, "the mapping on "+arn+" to stop", func() bool {
		resp, body := ts.do("GET", "/2015-03-31/event-source-mappings/?EventSourceArn="+url.QueryEscape(arn), nil, nil)
		var list struct {
			EventSourceMappings []struct{ State, StateTransitionReason string }
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list.EventSourceMappings) != 1 {
			t.Fatalf("ListEventSourceMappings: %d %s", resp.StatusCode, body)
		}
		m := list.EventSourceMappings[0]
		return m.State == "Disabled" && m.StateTransitionReason == "PROBLEM: Stream not found: "+arn
	})
}

// TestStreams checks the streams API's answers to bad input, and that a
// mapping whose stream goes behind Owl's back stops too.
func TestStreams(t *testing.T) {
	t.Parallel()
	ts := startServer(t, "", asyncConfig)
	ts.createZip("sink", interpreter(t, "python3"), "sink.handler",
		makeZip(t, zipEntry{name: "sink.py", body: "def handler(event, context):\n    print('GOT', len(event['Records']))\n"}))
	create := func(body string) (*http.Response, []byte) {
		return ts.do("POST", "/owl/v1/streams", []byte(body), nil)
	}
	resp, body := create(`{"Name":"ORDERS","Subjects":["orders.>"],"MaxBytes":2097152}`)
	if resp.StatusCode != 201 || !strings.Contains(string(body), `"StreamArn":"arn:owl:jetstream:::ORDERS"`) {
		t.Fatalf("CreateStream: %d %s", resp.StatusCode, body)
	}
	for _, c := range []struct {
		body       string
		status     int
		code, want string
	}{
		{`{"Name":"ORDERS","Subjects":["more.>"]}`, 409, "ResourceConflictException", "Stream ORDERS already exists."},
		{`{"Name":"OWL_MINE","Subjects":["mine"]}`, 400, "InvalidParameterValueException", "~are Owl's own"},
		{`{"Name":"KV_MINE","Subjects":["mine"]}`, 400, "InvalidParameterValueException", "~key-value buckets"},
		{`{"Name":"a.b","Subjects":["mine"]}`, 400, "InvalidParameterValueException", "~stream name has no"},
		{`{"Name":"MINE"}`, 400, "InvalidParameterValueException", "~Subjects is required"},
		{`{"Name":"MINE","Subjects":["owl.events.x"]}`, 400, "InvalidParameterValueException", "~Owl's own"},
		{`{"Name":"MINE","Subjects":["$JS.API.>"]}`, 400, "InvalidParameterValueException", "~Owl's own"},
		{`{"Name":"MINE","Subjects":["a..b"]}`, 400, "InvalidParameterValueException", "~empty token"},
		{`{"Name":"MINE","Subjects":["orders.new"]}`, 400, "InvalidParameterValueException", "~cannot hold orders.new"},
		{`{"Name":"MINE","Subjects":["mine"],"MaxBytes":1000}`, 400, "InvalidParameterValueException", "~at least 1048576"},
		{`{"Name":"MINE","Subjects":["mine"],"MaxAgeSeconds":-1}`, 400, "InvalidParameterValueException", "~MaxAge must be"},
		{`{"Name":"MINE","Subjects":["mine"],"MaxBytes":1099511627776}`, 400, "InvalidParameterValueException", "~more than your streams may still take"},
		{`{"Name":"MINE","Subjects":`, 400, "InvalidRequestContentException", "~Could not parse request body"},
	} {
		resp, body := create(c.body)
		wantError(t, resp, body, c.status, c.code, c.want)
	}
	resp, body = ts.do("GET", "/owl/v1/streams", nil, nil)
	var list struct{ Streams []struct{ Name string } }
	if resp.StatusCode != 200 || json.Unmarshal(body, &list) != nil || len(list.Streams) != 1 || list.Streams[0].Name != "ORDERS" {
		t.Fatalf("ListStreams lists the user's streams only, and the one refused none: %d %s", resp.StatusCode, body)
	}
	for _, name := range []string{"OWL_EVENTS", "KV_OWL_MAPPINGS", "NOPE"} {
		resp, body = ts.do("GET", "/owl/v1/streams/"+name, nil, nil)
		wantError(t, resp, body, 404, "ResourceNotFoundException", "Stream not found: arn:owl:jetstream:::"+name)
		resp, body = ts.do("DELETE", "/owl/v1/streams/"+name, nil, nil)
		wantError(t, resp, body, 404, "ResourceNotFoundException", "Stream not found: arn:owl:jetstream:::"+name)
	}
	if _, err := ts.JetStream().Stream(context.Background(), "OWL_EVENTS"); err != nil {
		t.Fatalf("DELETE of Owl's own stream touched it: %v", err)
	}

	// A stream that goes some other way than owl stream rm: the mapping
	// finds it gone, and stops.
	const arn = "arn:owl:jetstream:::ORDERS"
	resp, body = ts.do("POST", "/2015-03-31/event-source-mappings/", []byte(`{"EventSourceArn":"`+arn+`","FunctionName":"sink"}`), nil)
	if resp.StatusCode != 202 {
		t.Fatalf("CreateEventSourceMapping: %d %s", resp.StatusCode, body)
	}
	if err := ts.JetStream().DeleteStream(context.Background(), "ORDERS"); err != nil {
		t.Fatal(err)
	}
	waitMappingStopped(t, ts, arn)
}
