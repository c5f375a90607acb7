package lambdaapi_test

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

const eic = "/2019-09-25/functions/fn/event-invoke-config"

// Put replaces, Update merges, Get and Delete answer 404 without a
// config; the bytes are Lambda's (unset settings left out, DestinationConfig
// always there).
func TestEventInvokeConfigOperations(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	h.create("sink")
	h.do("GET", eic, nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("POST", eic, map[string]any{"MaximumRetryAttempts": 1}).fails(t, lambdaerr.ResourceNotFound)
	h.do("DELETE", eic, nil).fails(t, lambdaerr.ResourceNotFound)

	before := time.Now()
	resp := h.do("PUT", eic, map[string]any{})
	resp.ok(t, http.StatusOK, nil)
	number := regexp.MustCompile(`"LastModified":([0-9.]+),`)
	m := number.FindSubmatch(resp.body)
	if m == nil {
		t.Fatalf("no LastModified number in %s", resp.body)
	}
	if got := number.ReplaceAllString(string(resp.body), `"LastModified":X,`); got !=
		`{"LastModified":X,"FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST","DestinationConfig":{"OnSuccess":{},"OnFailure":{}}}` {
		t.Errorf("empty Put answered %s", got)
	}
	var put lambdawire.FunctionEventInvokeConfig
	resp.ok(t, http.StatusOK, &put)
	if at := time.UnixMilli(int64(put.LastModified * 1000)); at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("LastModified %s (%v) is not now", m[1], at)
	}

	sink := "arn:aws:lambda:us-east-1:000000000000:function:sink"
	var got lambdawire.FunctionEventInvokeConfig
	h.do("PUT", eic, map[string]any{"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 120,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": sink}}}).ok(t, http.StatusOK, &got)
	if *got.MaximumRetryAttempts != 0 || *got.MaximumEventAgeInSeconds != 120 || *got.DestinationConfig.OnFailure.Destination != sink ||
		got.DestinationConfig.OnSuccess.Destination != nil {
		t.Errorf("Put = %+v", got)
	}
	// Update: only what is given changes.
	resp = h.do("POST", "/2019-09-25/functions/fn:$LATEST/event-invoke-config", map[string]any{"MaximumRetryAttempts": 2,
		"DestinationConfig": map[string]any{"OnSuccess": map[string]any{"Destination": "arn:owl:nats:::orders.done"}}})
	if got := number.ReplaceAllString(string(resp.body), `"LastModified":X,`); got != `{"LastModified":X,`+
		`"FunctionArn":"arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST","MaximumRetryAttempts":2,"MaximumEventAgeInSeconds":120,`+
		`"DestinationConfig":{"OnSuccess":{"Destination":"arn:owl:nats:::orders.done"},"OnFailure":{"Destination":"`+sink+`"}}}` {
		t.Errorf("Update answered %s", got)
	}
	got = lambdawire.FunctionEventInvokeConfig{}
	resp.ok(t, http.StatusOK, &got)
	if *got.MaximumRetryAttempts != 2 || *got.MaximumEventAgeInSeconds != 120 || *got.DestinationConfig.OnFailure.Destination != sink ||
		*got.DestinationConfig.OnSuccess.Destination != "arn:owl:nats:::orders.done" {
		t.Errorf("Update = %+v", got)
	}
	// Put: what is not given is unset again.
	got = lambdawire.FunctionEventInvokeConfig{}
	h.do("PUT", eic+"?Qualifier=$LATEST", map[string]any{"MaximumEventAgeInSeconds": 60}).ok(t, http.StatusOK, &got)
	if got.MaximumRetryAttempts != nil || *got.MaximumEventAgeInSeconds != 60 || got.DestinationConfig.OnFailure.Destination != nil {
		t.Errorf("Put after Update = %+v", got)
	}
	got = lambdawire.FunctionEventInvokeConfig{}
	h.do("GET", "/2019-09-25/functions/arn:aws:lambda:us-east-1:000000000000:function:fn/event-invoke-config", nil).ok(t, http.StatusOK, &got)
	if *got.MaximumEventAgeInSeconds != 60 || got.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:fn:$LATEST" {
		t.Errorf("Get = %+v", got)
	}
	h.do("DELETE", eic, nil).ok(t, http.StatusNoContent, nil)
	h.do("GET", eic, nil).fails(t, lambdaerr.ResourceNotFound)
}

func TestEventInvokeConfigErrors(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	for _, tc := range []struct {
		path string
		body any
		code string
		msg  string
	}{
		{eic, map[string]any{"MaximumRetryAttempts": 5}, lambdaerr.Validation,
			"1 validation error detected: Value '5' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"},
		{eic, map[string]any{"MaximumRetryAttempts": -1}, lambdaerr.Validation, "greater than or equal to 0"},
		{eic, map[string]any{"MaximumEventAgeInSeconds": 59}, lambdaerr.Validation,
			"Value '59' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"},
		{eic, map[string]any{"MaximumEventAgeInSeconds": 21601}, lambdaerr.Validation, "less than or equal to 21600"},
		{eic, []byte("{not json"), lambdaerr.InvalidRequestContent, "Could not parse request body into json"},
		{eic, []byte(`{"MaximumRetryAttempts":"two"}`), lambdaerr.InvalidRequestContent, "Could not parse"},
		{eic, dest("OnSuccess", "arn:aws:lambda:us-east-1:000000000000:function:nope"), lambdaerr.InvalidParameterValue,
			"The destination function arn:aws:lambda:us-east-1:000000000000:function:nope does not exist."},
		{eic, dest("OnFailure", "arn:aws:lambda:us-east-1:000000000000:function:fn"), lambdaerr.InvalidParameterValue, "event loop"},
		{eic, dest("OnFailure", "arn:aws:sqs:us-east-1:000000000000:q"), lambdaerr.InvalidParameterValue,
			"Owl does not support destination type sqs"},
		{eic, dest("OnFailure", "arn:aws:events:us-east-1:000000000000:event-bus/default"), lambdaerr.InvalidParameterValue,
			"use a function ARN or arn:owl:nats:::<subject>"},
		{eic, dest("OnFailure", "arn:aws:s3:::bucket"), lambdaerr.InvalidParameterValue, "destination type s3"},
		{eic, dest("OnSuccess", "arn:owl:nats:::owl.internal"), lambdaerr.InvalidParameterValue, "not a valid NATS subject"},
		{eic, dest("OnSuccess", "arn:owl:nats:::a.*"), lambdaerr.InvalidParameterValue, "not a valid NATS subject"},
		{eic, dest("OnSuccess", "arn:owl:nats:::$SYS.x"), lambdaerr.InvalidParameterValue, "not a valid NATS subject"},
		{eic + "?Qualifier=7", map[string]any{}, lambdaerr.ResourceNotFound, ""},
		{eic + "?Qualifier=live", map[string]any{}, lambdaerr.ResourceNotFound, ""},
		{"/2019-09-25/functions/nope/event-invoke-config", map[string]any{}, lambdaerr.ResourceNotFound, ""},
		{"/2019-09-25/functions/fn:1/event-invoke-config?Qualifier=2", map[string]any{}, lambdaerr.InvalidParameterValue, "does not match"},
	} {
		resp := h.do("PUT", tc.path, tc.body)
		resp.fails(t, tc.code)
		var e struct{ Message string }
		resp.ok(t, resp.status, &e)
		if !strings.Contains(e.Message, tc.msg) {
			t.Errorf("PUT %s %v: %s, want it to say %q", tc.path, tc.body, resp.body, tc.msg)
		}
	}
	h.do("GET", eic+"?Qualifier=7", nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("GET", "/2019-09-25/functions/nope/event-invoke-config/list", nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("GET", eic+"/list?MaxItems=0", nil).fails(t, lambdaerr.Validation)
}

func dest(on, arn string) map[string]any {
	return map[string]any{"DestinationConfig": map[string]any{on: map[string]any{"Destination": arn}}}
}

// List pages by qualifier; a version's, an alias's and the function's
// configs go with them.
func TestEventInvokeConfigListAndDeletion(t *testing.T) {
	h := newHarness(t)
	h.create("fn")
	h.do("POST", fns+"/fn/versions", map[string]any{}).ok(t, http.StatusCreated, nil)
	h.do("POST", fns+"/fn/aliases", map[string]any{"Name": "live", "FunctionVersion": "1"}).ok(t, http.StatusCreated, nil)
	for _, q := range []string{"$LATEST", "1", "live"} {
		h.do("PUT", eic+"?Qualifier="+q, map[string]any{"MaximumRetryAttempts": 1}).ok(t, http.StatusOK, nil)
	}
	var arns []string
	marker := ""
	for pages := 0; ; pages++ {
		var list lambdawire.FunctionEventInvokeConfigList
		h.do("GET", eic+"/list?MaxItems=2"+marker, nil).ok(t, http.StatusOK, &list)
		for _, c := range list.FunctionEventInvokeConfigs {
			arns = append(arns, c.FunctionArn)
		}
		if list.NextMarker == nil {
			break
		}
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		marker = "&Marker=" + *list.NextMarker
	}
	base := "arn:aws:lambda:us-east-1:000000000000:function:fn:"
	if strings.Join(arns, " ") != base+"$LATEST "+base+"1 "+base+"live" {
		t.Errorf("listed %v", arns)
	}
	h.do("GET", eic+"/list?Marker="+base64.RawURLEncoding.EncodeToString([]byte("1")), nil).ok(t, http.StatusOK, nil)
	h.do("GET", "/2019-09-25/functions/fn:1/event-invoke-config/list", nil).fails(t, lambdaerr.InvalidParameterValue)

	h.do("DELETE", fns+"/fn/aliases/live", nil).ok(t, http.StatusNoContent, nil)
	h.do("GET", eic+"?Qualifier=live", nil).fails(t, lambdaerr.ResourceNotFound)
	h.do("DELETE", fns+"/fn?Qualifier=1", nil).ok(t, http.StatusNoContent, nil)
	var list lambdawire.FunctionEventInvokeConfigList
	h.do("GET", eic+"/list", nil).ok(t, http.StatusOK, &list)
	if len(list.FunctionEventInvokeConfigs) != 1 {
		t.Errorf("after deleting the alias and the version: %+v", list)
	}
	h.do("DELETE", fns+"/fn", nil).ok(t, http.StatusNoContent, nil)
	h.create("fn")
	h.do("GET", eic, nil).fails(t, lambdaerr.ResourceNotFound)
	list = lambdawire.FunctionEventInvokeConfigList{}
	h.do("GET", eic+"/list", nil).ok(t, http.StatusOK, &list)
	if list.FunctionEventInvokeConfigs == nil || len(list.FunctionEventInvokeConfigs) != 0 {
		t.Errorf("re-created function's list: %+v", list)
	}
}
