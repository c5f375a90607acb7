package lambdaapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// maxClientContext is Lambda's limit on X-Amz-Client-Context (base64).
const maxClientContext = 3583

// logTailBytes is how much of an invocation's log X-Amz-Log-Result carries.
const logTailBytes = 4096

func (a *API) invoke(w http.ResponseWriter, r *http.Request, body []byte) error {
	invType := r.Header.Get("X-Amz-Invocation-Type")
	switch invType {
	case "", "RequestResponse", "DryRun":
	case "Event":
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Asynchronous invocation (InvocationType Event) is not available in this Owl version yet; use RequestResponse.")
	default:
		return lambdaerr.ValidationFailed(invType, "invocationType", "Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
	}
	logType := r.Header.Get("X-Amz-Log-Type")
	switch logType {
	case "", "None", "Tail":
	default:
		return lambdaerr.ValidationFailed(logType, "logType", "Member must satisfy enum value set: [None, Tail]")
	}
	var clientContext string
	if cc := r.Header.Get("X-Amz-Client-Context"); cc != "" {
		if len(cc) > maxClientContext {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "Client context must be no larger than %d bytes.", maxClientContext)
		}
		raw, err := base64.StdEncoding.DecodeString(cc)
		if err != nil || !json.Valid(raw) {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "Client context must be a valid Base64-encoded JSON object.")
		}
		clientContext = string(raw)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	} else if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v)
		return lambdaerr.New(lambdaerr.InvalidRequestContent, "Could not parse request body into json: %v", err)
	}

	name, q, err := qualified(r)
	if err != nil {
		return err
	}
	t, err := a.reg.ResolveForInvoke(r.Context(), name, q, rand.Float64())
	if err != nil {
		return err
	}
	fn := t.Function
	version := fn.Version
	if invType == "DryRun" {
		w.Header().Set("X-Amz-Executed-Version", version)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}

	res, err := a.invoker.Invoke(r.Context(), InvokeRequest{
		Function:      fn,
		RequestID:     w.Header().Get("x-amzn-RequestId"),
		Payload:       body,
		ClientContext: clientContext,
		TraceID:       r.Header.Get("X-Amzn-Trace-Id"),
		InvokedARN:    a.reg.ARN(name, q),
	})
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("X-Amz-Executed-Version", version)
	if res.FunctionError {
		h.Set("X-Amz-Function-Error", "Unhandled")
	}
	if logType == "Tail" {
		tail := res.Log
		if len(tail) > logTailBytes {
			tail = tail[len(tail)-logTailBytes:]
		}
		h.Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte(tail)))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(res.Payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res.Payload)
	return nil
}
