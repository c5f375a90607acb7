package registry_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !lambdaerr.Is(err, code) {
		t.Errorf("%s: err = %v, want %s", what, err, code)
	}
}

// Put replaces, Update merges, and the in-memory mirror that the delivery
// loop reads follows both on every node, with Lambda's defaults when unset.
func TestEventInvokeConfigPutUpdateAndMirror(t *testing.T) {
	ctx := context.Background()
	a, b, _ := twoNodes(t)
	createFn(t, a, "v1")

	if c := b.AsyncConfig("fn", ""); c.Retries() != 2 || c.MaxAge() != 6*time.Hour || c.Qualifier != registry.Latest || c.FunctionName != "fn" {
		t.Fatalf("no config: %+v, retries %d, max age %v", c, c.Retries(), c.MaxAge())
	}
	_, err := a.PutEventInvokeConfig(ctx, "fn", "", registry.EventInvokeConfigInput{MaximumRetryAttempts: ptr(2)}, true)
	wantCode(t, "Update of a missing config", err, lambdaerr.ResourceNotFound)

	put, err := a.PutEventInvokeConfig(ctx, "fn", "", registry.EventInvokeConfigInput{
		MaximumRetryAttempts: ptr(0), MaximumEventAgeInSeconds: ptr(60), OnFailure: ptr("arn:owl:nats:::orders.failed")}, false)
	if err != nil || put.Qualifier != registry.Latest || put.Retries() != 0 || put.MaxAge() != time.Minute || put.OnFailure != "arn:owl:nats:::orders.failed" {
		t.Fatalf("Put = %+v, %v", put, err)
	}
	if got := a.AsyncConfig("fn", registry.Latest); got.Retries() != 0 || got.OnFailure != put.OnFailure {
		t.Fatalf("own node's mirror after Put: %+v", got)
	}
	eventually(t, "the other node's mirror to have the config", func() bool {
		return b.AsyncConfig("fn", "").MaxAge() == time.Minute
	})

	// Update changes only what it is given; "" removes a destination.
	upd, err := a.PutEventInvokeConfig(ctx, "fn", registry.Latest, registry.EventInvokeConfigInput{
		MaximumRetryAttempts: ptr(1), OnSuccess: ptr("arn:owl:nats:::orders.done")}, true)
	if err != nil || upd.Retries() != 1 || upd.MaxAge() != time.Minute || upd.OnSuccess != "arn:owl:nats:::orders.done" || upd.OnFailure == "" {
		t.Fatalf("Update = %+v, %v", upd, err)
	}
	upd, err = a.PutEventInvokeConfig(ctx, "fn", "", registry.EventInvokeConfigInput{OnFailure: ptr("")}, true)
	if err != nil || upd.OnFailure != "" || upd.OnSuccess == "" {
		t.Fatalf("Update removing OnFailure = %+v, %v", upd, err)
	}
	// Put replaces: what it does not give is unset again.
	put, err = a.PutEventInvokeConfig(ctx, "fn", "", registry.EventInvokeConfigInput{MaximumRetryAttempts: ptr(1)}, false)
	if err != nil || put.MaximumEventAgeInSeconds != nil || put.OnSuccess != "" || put.MaxAge() != 6*time.Hour {
		t.Fatalf("Put after Update = %+v, %v", put, err)
	}
	// The other node answers from its mirror, which follows the store.
	eventually(t, "the other node's Get to show the Put", func() bool {
		got, err := b.GetEventInvokeConfig(ctx, "fn", "")
		return err == nil && got.Retries() == 1 && got.OnFailure == "" && got.MaximumEventAgeInSeconds == nil
	})

	if err := a.DeleteEventInvokeConfig(ctx, "fn", ""); err != nil {
		t.Fatal(err)
	}
	_, err = a.GetEventInvokeConfig(ctx, "fn", "")
	wantCode(t, "Get after Delete", err, lambdaerr.ResourceNotFound)
	wantCode(t, "Delete twice", a.DeleteEventInvokeConfig(ctx, "fn", ""), lambdaerr.ResourceNotFound)
	if c := a.AsyncConfig("fn", ""); c.MaximumRetryAttempts != nil {
		t.Fatalf("mirror after Delete: %+v", c)
	}
}

func TestEventInvokeConfigValidation(t *testing.T) {
	ctx := context.Background()
	a, _, _ := twoNodes(t)
	createFn(t, a, "v1")
	other := testFunction()
	other.Name = "other"
	if _, err := a.Create(ctx, other, testZip(t, "o")); err != nil {
		t.Fatal(err)
	}
	put := func(q string, in registry.EventInvokeConfigInput) error {
		_, err := a.PutEventInvokeConfig(ctx, "fn", q, in, false)
		return err
	}
	for _, tc := range []struct {
		what string
		in   registry.EventInvokeConfigInput
		code string
		msg  string
	}{
		{"retries 3", registry.EventInvokeConfigInput{MaximumRetryAttempts: ptr(3)}, lambdaerr.Validation,
			"Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"},
		{"retries -1", registry.EventInvokeConfigInput{MaximumRetryAttempts: ptr(-1)}, lambdaerr.Validation, "greater than or equal to 0"},
		{"age 59", registry.EventInvokeConfigInput{MaximumEventAgeInSeconds: ptr(59)}, lambdaerr.Validation,
			"Value '59' at 'maximumEventAgeInSeconds'"},
		{"age 21601", registry.EventInvokeConfigInput{MaximumEventAgeInSeconds: ptr(21601)}, lambdaerr.Validation, "less than or equal to 21600"},
	} {
		err := put("", tc.in)
		if !lambdaerr.Is(err, tc.code) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want %s containing %q", tc.what, err, tc.code, tc.msg)
		}
	}
	// Bad destinations, each as OnSuccess and as OnFailure: what the
	// error says about it.
	const fnARN = "arn:aws:lambda:us-east-1:000000000000:function:"
	badDestinations := map[string]string{
		fnARN + "fn:1":    "event loop",
		fnARN + "nope":    fnARN + "nope does not exist",
		fnARN + "other:7": "does not exist",
		"arn:aws:lambda:us-east-1:111111111111:function:other": "does not exist",
		"arn:aws:sqs:us-east-1:000000000000:q":                 "Owl does not support destination type sqs",
		"arn:aws:sns:us-east-1:000000000000:t":                 "use a function ARN or arn:owl:nats:::<subject>",
		"somewhere":                                            "regular expression",
		"arn:owl:nats:::orders.*":                              "not a valid NATS subject",
		"arn:owl:nats:::orders.>":                              "not a valid NATS subject",
		"arn:owl:nats:::$JS.API":                               "'$'",
		"arn:owl:nats:::owl.events":                            "Owl's own",
		"arn:owl:nats:::a..b":                                  "empty token",
		"arn:owl:nats:::":                                      "empty token",
		"arn:owl:nats:::" + strings.Repeat("a", 256):           "255",
	}
	for dest, msg := range badDestinations {
		for _, in := range []registry.EventInvokeConfigInput{{OnSuccess: &dest}, {OnFailure: &dest}} {
			err := put("", in)
			if e := lambdaerr.As(err); e == nil || e.Status() != 400 || !strings.Contains(err.Error(), msg) {
				t.Errorf("destination %s: err = %v, want a 400 containing %q", dest, err, msg)
			}
		}
	}
	for _, ok := range []string{"arn:aws:lambda:us-east-1:000000000000:function:other", "arn:aws:lambda:us-east-1:000000000000:function:other:$LATEST",
		"arn:owl:nats:::orders", "arn:owl:nats:::Orders.done-1_x", "arn:owl:nats:::" + strings.Repeat("a", 255), "arn:owl:nats:::owlish.x"} {
		if err := put("", registry.EventInvokeConfigInput{OnSuccess: ptr(ok)}); err != nil {
			t.Errorf("destination %s: %v", ok, err)
		}
	}
	wantCode(t, "unknown version", put("3", registry.EventInvokeConfigInput{}), lambdaerr.ResourceNotFound)
	wantCode(t, "unknown alias", put("live", registry.EventInvokeConfigInput{}), lambdaerr.ResourceNotFound)
	_, err := a.PutEventInvokeConfig(ctx, "nope", "", registry.EventInvokeConfigInput{}, false)
	wantCode(t, "unknown function", err, lambdaerr.ResourceNotFound)
	_, err = a.GetEventInvokeConfig(ctx, "nope", "")
	wantCode(t, "Get of an unknown function", err, lambdaerr.ResourceNotFound)
	_, err = a.ListEventInvokeConfigs(ctx, "nope")
	wantCode(t, "List of an unknown function", err, lambdaerr.ResourceNotFound)
}

// Configs of every qualifier are listed by qualifier, and go with their
// version, alias or function.
func TestEventInvokeConfigsGoWithTheirQualifier(t *testing.T) {
	ctx := context.Background()
	a, b, _ := twoNodes(t)
	createFn(t, a, "v1")
	if _, err := a.Publish(ctx, "fn", registry.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateAlias(ctx, "fn", "live", registry.AliasInput{FunctionVersion: ptr("1")}); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{"", "1", "live"} {
		if _, err := a.PutEventInvokeConfig(ctx, "fn", q, registry.EventInvokeConfigInput{MaximumRetryAttempts: ptr(i)}, false); err != nil {
			t.Fatalf("Put %q: %v", q, err)
		}
	}
	list, err := a.ListEventInvokeConfigs(ctx, "fn")
	if err != nil || len(list) != 3 || list[0].Qualifier != registry.Latest || list[1].Qualifier != "1" || list[2].Qualifier != "live" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if c := a.AsyncConfig("fn", "live"); c.Retries() != 2 {
		t.Fatalf("AsyncConfig(live) = %+v: the alias's own config applies", c)
	}
	if err := a.DeleteAlias(ctx, "fn", "live"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteVersion(ctx, "fn", "1"); err != nil {
		t.Fatal(err)
	}
	if list, _ := a.ListEventInvokeConfigs(ctx, "fn"); len(list) != 1 || list[0].Qualifier != registry.Latest {
		t.Fatalf("List after deleting the alias and the version = %+v", list)
	}
	eventually(t, "the other node's mirror to drop the alias's config", func() bool {
		return b.AsyncConfig("fn", "live").MaximumRetryAttempts == nil && b.AsyncConfig("fn", "1").MaximumRetryAttempts == nil
	})
	if err := a.Delete(ctx, "fn"); err != nil {
		t.Fatal(err)
	}
	if c := a.AsyncConfig("fn", ""); c.MaximumRetryAttempts != nil {
		t.Fatalf("config outlived its function: %+v", c)
	}
	// A function created again under the name starts without one.
	createFn(t, a, "v2")
	if _, err := a.GetEventInvokeConfig(ctx, "fn", ""); !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		t.Fatalf("re-created function's config: %v", err)
	}
}
