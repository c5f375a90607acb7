// Package tracing owns Owl's traces: the trace headers an invocation
// arrives with (X-Ray's X-Amzn-Trace-Id and W3C's traceparent, header.go),
// and the spans Owl records of it, exported over OTLP/HTTP with the
// OpenTelemetry SDK when an endpoint is configured (--otlp-endpoint, or
// the standard OTEL_EXPORTER_OTLP_* variables). Without one there is no
// SDK at all: a nil *Tracer records nothing and costs a nil check.
//
// Export never slows an invocation: ended spans wait in a bounded queue
// that a background goroutine sends in batches; past the bound a span is
// dropped and counted (Dropped), and so are the spans of a batch the
// endpoint did not take.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Options configure a Tracer.
type Options struct {
	// Endpoint is the OTLP/HTTP endpoint's base URL (spans go to
	// Endpoint/v1/traces), as OTEL_EXPORTER_OTLP_ENDPOINT; empty: those
	// variables decide.
	Endpoint string
	// Version is Owl's, the resource's service.version.
	Version string
	// QueueSize bounds the spans waiting for export (DefaultQueueSize
	// when 0).
	QueueSize int
	Logger    *slog.Logger
}

// DefaultQueueSize is Options.QueueSize's default (the SDK's).
const DefaultQueueSize = 2048

// Configured reports whether spans are to be exported: an endpoint is
// given, or OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_TRACES_EXPORTER is
// not "none", nor OTEL_SDK_DISABLED true).
func Configured(endpoint string) bool {
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	return endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// CheckEndpoint says what is wrong with an --otlp-endpoint, if anything.
func CheckEndpoint(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("otlp endpoint %q: want an http:// or https:// URL, such as http://localhost:4318", endpoint)
	}
	return nil
}

// Tracer records Owl's spans and exports them. A nil *Tracer is off:
// its methods do nothing.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	queue    int64
	// pending counts the spans handed to the batch processor and not yet
	// exported; dropped those never exported (queue full, export failed).
	pending, dropped atomic.Int64
	log              *slog.Logger
	lastWarn         atomic.Int64 // unix nanoseconds of the last export warning
}

// New makes the Tracer of opts, or nil when no endpoint is configured
// (Configured). It does not connect: an endpoint that is down costs
// dropped spans, never a failure here or a slower invocation.
func New(ctx context.Context, opts Options) (*Tracer, error) {
	if !Configured(opts.Endpoint) {
		return nil, nil
	}
	if err := CheckEndpoint(opts.Endpoint); err != nil {
		return nil, err
	}
	t := &Tracer{queue: int64(opts.QueueSize), log: opts.Logger}
	if t.queue <= 0 {
		t.queue = DefaultQueueSize
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	xopts := []otlptracehttp.Option{otlptracehttp.WithRetry(otlptracehttp.RetryConfig{
		Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: 15 * time.Second})}
	if opts.Endpoint != "" {
		xopts = append(xopts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(opts.Endpoint, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, xopts...)
	if err != nil {
		return nil, fmt.Errorf("the OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "owl"), attribute.String("service.version", opts.Version)),
		resource.WithFromEnv()) // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	if err != nil && res == nil {
		return nil, fmt.Errorf("the trace resource: %w", err)
	}
	// The SDK reports export failures through the global handler (on
	// stderr by default); countingExporter logs them, rate-limited.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, t: t},
		sdktrace.WithMaxQueueSize(int(t.queue)))
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(&boundedProcessor{SpanProcessor: bsp, t: t}))
	t.tracer = t.provider.Tracer("github.com/owl-project/owl")
	return t, nil
}

// Enabled reports whether t records spans.
func (t *Tracer) Enabled() bool { return t != nil }

// Dropped is how many spans were never exported: the queue was full or
// the endpoint did not take them.
func (t *Tracer) Dropped() int64 {
	if t == nil {
		return 0
	}
	return t.dropped.Load()
}

// Shutdown exports the spans still queued, until ctx ends, and stops.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// WithParent is ctx with the remote parent of an X-Ray header, so spans
// started in it belong to that trace; ctx when t is off, the header is
// malformed, or ctx already has a span.
func (t *Tracer) WithParent(ctx context.Context, header string) context.Context {
	if t == nil || trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	sc, ok := ParseXRay(header)
	if !ok {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// Start starts a span in ctx's trace; a no-op span when t is off.
func (t *Tracer) Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return t.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// StartAt is Start for a span that began at start (Owl measured it
// rather than ran it: the queue, an acquisition); end it with
// span.End(trace.WithTimestamp(end)).
func (t *Tracer) StartAt(ctx context.Context, name string, start time.Time, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if t == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return t.tracer.Start(ctx, name, trace.WithTimestamp(start), trace.WithAttributes(attrs...))
}

// Record records a span that already happened, from start to end, in
// ctx's trace (a wait Owl measured: the queue, an init).
func (t *Tracer) Record(ctx context.Context, name string, start, end time.Time, attrs ...attribute.KeyValue) {
	if t == nil {
		return
	}
	_, span := t.StartAt(ctx, name, start, attrs...)
	span.End(trace.WithTimestamp(end))
}

// Header is the X-Ray header h with span as its parent (what a runtime
// gets: its own spans and calls are children of span); h when t is off or
// span records nothing.
func (t *Tracer) Header(h string, span trace.Span) string {
	if t == nil || !span.SpanContext().IsValid() {
		return h
	}
	return FormatXRay(span.SpanContext())
}

// boundedProcessor bounds the spans the batch processor holds at its
// queue's size, so that it never drops one itself, and counts those it
// drops instead (the SDK only logs its own count).
type boundedProcessor struct {
	sdktrace.SpanProcessor
	t *Tracer
}

func (p *boundedProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if p.t.pending.Add(1) > p.t.queue {
		p.t.pending.Add(-1)
		p.t.dropped.Add(1)
		return
	}
	p.SpanProcessor.OnEnd(s)
}

// countingExporter counts the spans exported, and those the endpoint
// did not take as dropped.
type countingExporter struct {
	sdktrace.SpanExporter
	t *Tracer
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.t.pending.Add(-int64(len(spans)))
	if err != nil {
		e.t.dropped.Add(int64(len(spans)))
		now := time.Now().UnixNano()
		if last := e.t.lastWarn.Load(); now-last > int64(time.Minute) && e.t.lastWarn.CompareAndSwap(last, now) {
			e.t.log.Warn("spans not exported; dropped (counted in owl_trace_spans_dropped_total)", "spans", len(spans), "err", err)
		}
	}
	return err
}
