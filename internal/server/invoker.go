package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/tracing"
	"github.com/owl-project/owl/internal/worker"
)

// workerInvoker puts this node's worker behind the API's invoker seam
// (lambdaapi.Invoker), mapping the seam's request and result types onto
// the worker's. A remote worker would sit behind the same interface.
type workerInvoker struct{ w *worker.Worker }

func (i workerInvoker) Invoke(ctx context.Context, req lambdaapi.InvokeRequest) (*lambdaapi.InvokeResult, error) {
	res, err := i.w.Invoke(ctx, req.Function, worker.Request{
		RequestID:     req.RequestID,
		Payload:       req.Payload,
		ClientContext: req.ClientContext,
		TraceID:       req.TraceID,
		InvokedARN:    req.InvokedARN,
		Depth:         req.Depth,
		Origin:        req.Origin,
		Stream:        req.Stream, // the same method set as runtimeapi.Stream
	})
	if res == nil {
		return nil, err
	}
	return &lambdaapi.InvokeResult{
		Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType, Log: res.Log, Streamed: res.Streamed,
	}, err
}

func (i workerInvoker) Provisioned(name, version string) (ready int, failure string) {
	return i.w.Provisioned(name, version)
}

// eventInvoker puts the node's invoker (the worker, or placement in a
// cluster) behind asynchronous delivery's seam (events.Invoker), the
// delivery in the event's trace (a new one for an event without), after
// the span of its wait in the queue.
type eventInvoker struct {
	inv lambdaapi.Invoker
	t   *tracing.Tracer
}

func (i eventInvoker) Invoke(ctx context.Context, fn registry.Function, req events.Request) (events.Outcome, error) {
	if req.TraceID == "" {
		req.TraceID = tracing.NewHeader()
	}
	if i.t.Enabled() {
		ctx = i.t.WithParent(ctx, req.TraceID)
		if !req.Queued.IsZero() {
			i.t.Record(ctx, "owl.queue", req.Queued, time.Now(), attribute.String("faas.name", fn.Name),
				attribute.String("faas.invocation_id", req.RequestID), attribute.String("faas.trigger", "pubsub"))
		}
	}
	res, err := i.inv.Invoke(ctx, lambdaapi.InvokeRequest{Function: fn,
		RequestID: req.RequestID, Payload: req.Payload, TraceID: req.TraceID, InvokedARN: req.InvokedARN,
		Depth: req.Depth, Origin: req.Origin,
	})
	if res == nil {
		return events.Outcome{}, err
	}
	return events.Outcome{Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType}, err
}

// insideHandler is the handler of the calls a function makes from inside
// its sandbox (worker.Caller), served by the API.
func insideHandler(api *lambdaapi.API, c worker.Caller, logger *slog.Logger) http.Handler {
	if api == nil {
		return nil
	}
	h, err := api.Inside(lambdaapi.Caller{Function: c.Function, Current: c.Current,
		Credentials: auth.Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken}})
	if err != nil {
		logger.Error("a function's own calls will not be served", "function", c.Function, "err", err)
		return nil
	}
	return h
}
