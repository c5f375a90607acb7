package worker

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/owl-project/owl/internal/registry"
)

// traceStart records the spans of an environment's acquisition, from
// acquired back to t0 (owl.acquire, and owl.init within it on a cold
// start), and starts the span of the runtime handling req (owl.invoke),
// all in ctx's trace. traceID is the header the runtime gets, its parent
// owl.invoke. With tracing off: no span, req's own header.
func (w *Worker) traceStart(ctx context.Context, fn registry.Function, req *Request, t0, acquired time.Time, cold coldStart) (span trace.Span, traceID string) {
	t := w.cfg.Tracer
	if !t.Enabled() {
		return trace.SpanFromContext(context.Background()), req.TraceID
	}
	attrs := w.traceAttrs(fn, req, cold.dur > 0)
	w.traceAcquire(ctx, attrs, t0, acquired, cold.dur, nil)
	_, span = t.Start(ctx, "owl.invoke", trace.SpanKindInternal, attrs...)
	return span, t.Header(req.TraceID, span)
}

// traceAcquire records owl.acquire from t0 to acquired and, when initDur
// is not zero, owl.init, the runtime's initialisation, its last initDur;
// failed is the init's error type, if it failed.
func (w *Worker) traceAcquire(ctx context.Context, attrs []attribute.KeyValue, t0, acquired time.Time, initDur time.Duration, failed error) {
	t := w.cfg.Tracer
	actx, span := t.StartAt(ctx, "owl.acquire", t0, attrs...)
	if initDur > 0 {
		t.Record(actx, "owl.init", acquired.Add(-initDur), acquired, attrs...)
	}
	if failed != nil {
		span.SetStatus(codes.Error, failed.Error())
	}
	span.End(trace.WithTimestamp(acquired))
}

// traceAttrs are the attributes of an invocation's spans.
func (w *Worker) traceAttrs(fn registry.Function, req *Request, cold bool) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("faas.name", fn.Name), attribute.String("faas.version", fnVersion(fn)),
		attribute.String("faas.invocation_id", req.RequestID), attribute.Bool("faas.coldstart", cold),
		attribute.Int("faas.max_memory", fn.MemorySize<<20), attribute.String("cloud.region", w.cfg.Region),
	}
}

// traceFailedInit records the acquisition of an environment whose runtime
// failed to initialise.
func (w *Worker) traceFailedInit(ctx context.Context, fn registry.Function, req *Request, t0 time.Time, f *initFailed) {
	if !w.cfg.Tracer.Enabled() {
		return
	}
	w.traceAcquire(ctx, w.traceAttrs(fn, req, true), t0, time.Now(), f.dur, f)
}

// traceEnd ends an invocation's span, an error when the runtime gave no
// outcome or a function error.
func traceEnd(span trace.Span, d *delivery) {
	if !span.IsRecording() {
		return
	}
	switch {
	case d.err != nil:
		span.SetStatus(codes.Error, d.err.Error())
	case d.out.IsError:
		span.SetStatus(codes.Error, d.out.ErrorType)
	}
	span.End()
}
