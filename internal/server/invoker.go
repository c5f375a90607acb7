package server

import (
	"context"

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
	})
	if res == nil {
		return events.Outcome{}, err
	}
	return events.Outcome{Payload: res.Payload, FunctionError: res.FunctionError, ErrorType: res.ErrorType}, err
}
