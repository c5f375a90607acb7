package lambdaapi

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/owl-project/owl/internal/tracing"
)

// traceInvoke reads the trace an invocation arrives with (X-Amzn-Trace-Id,
// else traceparent, else a new one: tracing.FromHeaders) and starts the
// API's span of it, name, when tracing is on: rr is r in that span (r
// itself when off). header is the X-Ray header the invocation carries on,
// its parent the API's span; end ends that span with the handler's error.
func (a *API) traceInvoke(r *http.Request, name, function, requestID string) (rr *http.Request, header string, end func(error)) {
	header = tracing.FromHeaders(r.Header)
	t := a.opts.Tracer
	if !t.Enabled() {
		return r, header, func(error) {}
	}
	ctx, span := t.Start(t.WithParent(r.Context(), header), name, trace.SpanKindServer,
		attribute.String("faas.name", function), attribute.String("faas.invocation_id", requestID),
		attribute.String("cloud.region", a.opts.Region), attribute.String("cloud.account.id", a.opts.AccountID))
	return r.WithContext(ctx), t.Header(header, span), func(err error) {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
