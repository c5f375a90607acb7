package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/registry"
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
	})
	if res == nil {
		return nil, err
	}
	return &lambdaapi.InvokeResult{
		Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType, Log: res.Log,
	}, err
}

func (i workerInvoker) Provisioned(name, version string) (ready int, failure string) {
	return i.w.Provisioned(name, version)
}

// eventInvoker puts the worker behind asynchronous delivery's seam
// (events.Invoker).
type eventInvoker struct{ w *worker.Worker }

func (i eventInvoker) Invoke(ctx context.Context, fn registry.Function, req events.Request) (events.Outcome, error) {
	res, err := i.w.Invoke(ctx, fn, worker.Request{
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
