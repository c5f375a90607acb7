package lambdaapi

import (
	"context"
	"net/http"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/triggers"
)

// Owl's schedules API (/owl/v1/triggers): create, list, show and delete
// the triggers that invoke functions on a schedule (internal/triggers,
// docs/events.md).

// Triggers keeps the schedules.
type Triggers interface {
	Create(ctx context.Context, in triggers.CreateInput) (triggers.Trigger, error)
	Get(ctx context.Context, name string) (triggers.Trigger, error)
	List(ctx context.Context) ([]triggers.Trigger, error)
	Delete(ctx context.Context, name string) error
	ARN(name string) string
}

func (a *API) triggers() (Triggers, error) {
	if a.opts.Triggers == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Triggers are not enabled on this node.")
	}
	return a.opts.Triggers, nil
}

func (a *API) createTrigger(w http.ResponseWriter, r *http.Request, body []byte) error {
	ts, err := a.triggers()
	if err != nil {
		return err
	}
	var in lambdawire.TriggerInput
	if err := decode(body, &in); err != nil {
		return err
	}
	t, err := ts.Create(r.Context(), triggers.CreateInput{Name: in.Name, Schedule: in.Schedule, Timezone: in.Timezone,
		Function: in.Function, Input: in.Input, CatchUp: in.CatchUp})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wireTrigger(ts, t))
	return nil
}

func (a *API) listTriggers(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ts, err := a.triggers()
	if err != nil {
		return err
	}
	all, err := ts.List(r.Context())
	if err != nil {
		return err
	}
	out := lambdawire.TriggerList{Triggers: []lambdawire.Trigger{}}
	for _, t := range all {
		out.Triggers = append(out.Triggers, wireTrigger(ts, t))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getTrigger(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ts, err := a.triggers()
	if err != nil {
		return err
	}
	t, err := ts.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, wireTrigger(ts, t))
	return nil
}

func (a *API) deleteTrigger(w http.ResponseWriter, r *http.Request, _ []byte) error {
	ts, err := a.triggers()
	if err != nil {
		return err
	}
	if err := ts.Delete(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func wireTrigger(ts Triggers, t triggers.Trigger) lambdawire.Trigger {
	fn := t.Function
	if t.Qualifier != "" {
		fn += ":" + t.Qualifier
	}
	out := lambdawire.Trigger{Name: t.Name, Arn: ts.ARN(t.Name), Schedule: t.Schedule, Timezone: t.Timezone,
		Function: fn, Input: t.Input, CatchUp: t.CatchUp, State: t.State, StateReason: t.Reason, CreatedAt: t.Created}
	if !t.LastFiring.IsZero() {
		last := t.LastFiring.UTC()
		out.LastFiring = &last
	}
	if next, ok := t.Next(); ok {
		next = next.UTC()
		out.NextFiring = &next
	}
	return out
}
