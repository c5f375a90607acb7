package lambdaerr

import (
	"errors"
	"fmt"
	"testing"
)

func TestStatuses(t *testing.T) {
	for code, want := range map[string]int{
		ResourceNotFound: 404, InvalidParameterValue: 400, TooManyRequests: 429, Service: 500,
		ServiceUnavailable: 503, InvalidSignature: 403, MissingAuthenticationToken: 403,
		IncompleteSignature: 403, UnrecognizedClient: 403, "SomethingElseException": 500,
	} {
		if got := (&Error{Code: code}).Status(); got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
	}
	for code := range statuses {
		// Every 403 but AccessDenied (authenticated, not permitted) is an
		// authentication failure.
		if IsAuthentication(code) != (statuses[code] == 403 && code != AccessDenied) {
			t.Errorf("%s: IsAuthentication %v with status %d", code, IsAuthentication(code), statuses[code])
		}
	}
}

func TestAsAndIs(t *testing.T) {
	cause := errors.New("disk on fire")
	wrapped := fmt.Errorf("storing: %w", Wrap(ResourceConflict, cause, "busy %d", 1))
	if e := As(wrapped); e.Code != ResourceConflict || e.Message != "busy 1" || !errors.Is(wrapped, cause) {
		t.Errorf("As of a wrapped Error: %+v", e)
	}
	if !Is(wrapped, ResourceConflict) || Is(wrapped, ResourceNotFound) {
		t.Error("Is misjudges the code")
	}
	e := As(cause)
	if e.Code != Service || e.Message != "An internal error occurred." || !errors.Is(e, cause) {
		t.Errorf("As of a plain error: %+v; want a ServiceException hiding the cause", e)
	}
}

func TestErrorBody(t *testing.T) {
	got := string(ErrorBody(SandboxTimedout, `Task timed out after 3.00 seconds "quoted"`))
	want := `{"errorMessage":"Task timed out after 3.00 seconds \"quoted\"","errorType":"Sandbox.Timedout"}`
	if got != want {
		t.Errorf("ErrorBody = %s, want %s", got, want)
	}
}
