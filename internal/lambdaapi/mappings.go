package lambdaapi

import (
	"context"
	"net/http"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/sources"
	"github.com/owl-project/owl/internal/tracing"
)

// Event source mappings (2015-03-31/event-source-mappings) whose source
// is a NATS subject or a JetStream stream (internal/sources,
// docs/events.md), and Owl's publish (/owl/v1/events/publish).

// Mappings keeps the event source mappings.
type Mappings interface {
	Create(ctx context.Context, in sources.Input) (sources.Mapping, error)
	Update(ctx context.Context, uuid string, in sources.Input) (sources.Mapping, error)
	Get(ctx context.Context, uuid string) (sources.Mapping, error)
	Delete(ctx context.Context, uuid string) (sources.Mapping, error)
	List(ctx context.Context, function, arn string) ([]sources.Mapping, error)
	Publish(ctx context.Context, subject string, data []byte, depth int, origin, trace string) (uint64, bool, error)
	ARN(uuid string) string
	CreateStream(ctx context.Context, in sources.StreamInput) (sources.Stream, error)
	GetStream(ctx context.Context, name string) (sources.Stream, error)
	ListStreams(ctx context.Context) ([]sources.Stream, error)
	DeleteStream(ctx context.Context, name string) error
}

func (a *API) mappings() (Mappings, error) {
	if a.opts.Mappings == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Event source mappings are not enabled on this node.")
	}
	return a.opts.Mappings, nil
}

func mappingInput(in lambdawire.EventSourceMappingInput) (sources.Input, error) {
	out := sources.Input{EventSourceArn: in.EventSourceArn, FunctionName: in.FunctionName, Enabled: in.Enabled,
		BatchSize: in.BatchSize, BatchWindow: in.MaximumBatchingWindowInSeconds, MaxRetries: in.MaximumRetryAttempts,
		Bisect: in.BisectBatchOnFunctionError, StartingPosition: in.StartingPosition}
	if ts := in.StartingPositionTimestamp; ts != nil {
		t := time.UnixMilli(int64(*ts * 1000)).UTC()
		out.StartingTimestamp = &t
	}
	if fc := in.FilterCriteria; fc != nil {
		var patterns []string
		for _, f := range fc.Filters {
			if f.Pattern != nil {
				patterns = append(patterns, *f.Pattern)
			}
		}
		out.Filters = &patterns
	}
	if d := in.DestinationConfig; d != nil && d.OnFailure != nil {
		dest := ""
		if d.OnFailure.Destination != nil {
			dest = *d.OnFailure.Destination
		}
		out.OnFailure = &dest
	}
	if in.FunctionResponseTypes != nil {
		report := false
		for _, t := range *in.FunctionResponseTypes {
			if t != "ReportBatchItemFailures" {
				return out, lambdaerr.ValidationFailed(t, "functionResponseTypes", "Member must satisfy enum value set: [ReportBatchItemFailures]")
			}
			report = true
		}
		out.ReportItemFailures = &report
	}
	return out, nil
}

func (a *API) createMapping(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeMapping(w, r, body, "")
}

func (a *API) updateMapping(w http.ResponseWriter, r *http.Request, body []byte) error {
	return a.changeMapping(w, r, body, r.PathValue("uuid"))
}

func (a *API) changeMapping(w http.ResponseWriter, r *http.Request, body []byte, uuid string) error {
	ms, err := a.mappings()
	if err != nil {
		return err
	}
	var req lambdawire.EventSourceMappingInput
	if err := decode(body, &req); err != nil {
		return err
	}
	in, err := mappingInput(req)
	if err != nil {
		return err
	}
	var mp sources.Mapping
	if uuid == "" {
		mp, err = ms.Create(r.Context(), in)
	} else {
		mp, err = ms.Update(r.Context(), uuid, in)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, a.wireMapping(ms, mp, ""))
	return nil
}

func (a *API) getMapping(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ms, err := a.mappings()
	if err != nil {
		return err
	}
	mp, err := ms.Get(r.Context(), r.PathValue("uuid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.wireMapping(ms, mp, ""))
	return nil
}

func (a *API) deleteMapping(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ms, err := a.mappings()
	if err != nil {
		return err
	}
	mp, err := ms.Delete(r.Context(), r.PathValue("uuid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, a.wireMapping(ms, mp, "Deleting"))
	return nil
}

func (a *API) listMappings(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ms, err := a.mappings()
	if err != nil {
		return err
	}
	fn := ""
	if s := r.URL.Query().Get("FunctionName"); s != "" {
		name, _, err := registry.ParseName(s)
		if err != nil {
			return err
		}
		fn = name
	}
	all, err := ms.List(r.Context(), fn, r.URL.Query().Get("EventSourceArn"))
	if err != nil {
		return err
	}
	out := lambdawire.EventSourceMappingList{EventSourceMappings: []lambdawire.EventSourceMappingConfiguration{}}
	for _, mp := range all {
		out.EventSourceMappings = append(out.EventSourceMappings, a.wireMapping(ms, mp, ""))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) wireMapping(ms Mappings, mp sources.Mapping, state string) lambdawire.EventSourceMappingConfiguration {
	if state == "" {
		state = "Disabled"
		if mp.Enabled {
			state = "Enabled"
		}
	}
	out := lambdawire.EventSourceMappingConfiguration{
		UUID: mp.UUID, EventSourceMappingArn: ms.ARN(mp.UUID), EventSourceArn: mp.ARN(),
		FunctionArn: a.reg.ARN(mp.Function, mp.Qualifier), State: state, StateTransitionReason: cmpOr(mp.StateReason, "USER_INITIATED"),
		BatchSize: mp.BatchSize, MaximumBatchingWindowInSeconds: mp.BatchWindow, MaximumRetryAttempts: mp.MaxRetries,
		BisectBatchOnFunctionError: mp.Bisect, StartingPosition: mp.StartingPosition,
		LastModified: float64(mp.LastModified.UnixMilli()) / 1000,
	}
	if !mp.StartingTimestamp.IsZero() {
		ts := float64(mp.StartingTimestamp.UnixMilli()) / 1000
		out.StartingPositionTimestamp = &ts
	}
	if len(mp.Filters) > 0 {
		out.FilterCriteria = &lambdawire.FilterCriteria{}
		for _, f := range mp.Filters {
			out.FilterCriteria.Filters = append(out.FilterCriteria.Filters, lambdawire.Filter{Pattern: &f})
		}
	}
	if mp.OnFailure != "" {
		dest := mp.OnFailure
		out.DestinationConfig = &lambdawire.MappingDestinationConfig{OnFailure: &lambdawire.OnDestination{Destination: &dest}}
	}
	if mp.ReportItemFailures {
		out.FunctionResponseTypes = []string{"ReportBatchItemFailures"}
	}
	return out
}

func cmpOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// publishEvent is POST /owl/v1/events/publish: data on a NATS subject.
func (a *API) publishEvent(w http.ResponseWriter, r *http.Request, body []byte) error {
	ms, err := a.mappings()
	if err != nil {
		return err
	}
	var in lambdawire.PublishInput
	if err := decode(body, &in); err != nil {
		return err
	}
	if len(in.Data) == 0 {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Data is required: the JSON event to publish.")
	}
	ch := chainOf(r.Context()) // a function's own publish: a hop down its chain
	// The caller's trace, if it sent one, goes on in the message.
	trace := ""
	if r.Header.Get(tracing.HeaderXRay) != "" || r.Header.Get(tracing.HeaderTraceparent) != "" {
		trace = tracing.FromHeaders(r.Header)
	}
	seq, stored, err := ms.Publish(r.Context(), in.Subject, in.Data, ch.depth, ch.origin, trace)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, lambdawire.PublishOutput{Stored: stored, Sequence: seq})
	return nil
}
