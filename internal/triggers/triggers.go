// Package triggers owns schedules: named triggers that invoke a function
// asynchronously on an EventBridge Scheduler expression (rate, cron, at;
// internal/schedule), kept in the JetStream KV bucket OWL_TRIGGERS, and
// the scheduler that fires them. Each firing is one asynchronous event
// (internal/events) with a request id derived from the trigger and the
// firing time, so a firing is stored once however often a restart makes
// the scheduler consider it, and a record in the event log.
package triggers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/schedule"
	"github.com/owl-project/owl/internal/tracing"
)

const bucket = "OWL_TRIGGERS"

// States of a trigger.
const (
	// Enabled triggers fire.
	Enabled = "ENABLED"
	// Completed is a one-time schedule (at) that fired.
	Completed = "COMPLETED"
	// FunctionNotFound is a trigger whose function, version or alias was
	// deleted: it stopped (Reason says when and what).
	FunctionNotFound = "FUNCTION_NOT_FOUND"
)

// Catch-up policies: what a schedule does about firings it missed while
// Owl was down.
const (
	// CatchUpLast fires the latest missed firing once (the default).
	CatchUpLast = "last"
	// CatchUpNone fires none of them; the schedule resumes with its next.
	CatchUpNone = "none"
)

// lateness is how late a firing may run and still count as on time
// rather than missed: the scheduler's own delays on a loaded machine.
const lateness = time.Minute

// Trigger is one schedule, as stored.
type Trigger struct {
	Name      string          `json:"name"`
	Schedule  string          `json:"schedule"`
	Timezone  string          `json:"timezone,omitempty"`
	Function  string          `json:"function"`
	Qualifier string          `json:"qualifier,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	CatchUp   string          `json:"catch_up"`
	Created   time.Time       `json:"created"`
	// LastFiring is the firing time of the last event stored.
	LastFiring time.Time `json:"last_firing,omitzero"`
	State      string    `json:"state"`
	Reason     string    `json:"reason,omitempty"`
}

// Next is the trigger's next firing after its last (or its creation),
// and false when it will not fire again.
func (t Trigger) Next() (time.Time, bool) {
	if t.State != Enabled {
		return time.Time{}, false
	}
	s, err := schedule.Parse(t.Schedule, t.Timezone)
	if err != nil {
		return time.Time{}, false
	}
	from := t.Created
	if !t.LastFiring.IsZero() {
		from = t.LastFiring
	}
	return s.Next(from, t.Created)
}

// Functions is what the scheduler reads of the registry.
type Functions interface {
	ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (registry.Target, error)
}

// Sink stores the events of firings (events.Queue).
type Sink interface {
	EnqueueFrom(ctx context.Context, ev events.Event, typ, source string) error
	Has(ctx context.Context, fn, id string) (bool, error)
}

// Options configure the scheduler.
type Options struct {
	Region, AccountID string
	Logger            *slog.Logger
}

// Scheduler keeps the triggers and fires them.
type Scheduler struct {
	kv   jetstream.KeyValue
	fns  Functions
	sink Sink
	opts Options
	log  *slog.Logger

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	fired, missed, stopped atomic.Int64
}

// Open opens the triggers' bucket. Start begins firing.
func Open(ctx context.Context, js jetstream.JetStream, fns Functions, sink Sink, opts Options) (*Scheduler, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Owl's triggers: schedules and where their events go", History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", bucket, err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{kv: kv, fns: fns, sink: sink, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// CreateInput is a new trigger.
type CreateInput struct {
	Name, Schedule, Timezone string
	// Function is a name, name:qualifier or function ARN.
	Function string
	Input    json.RawMessage
	CatchUp  string
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Create checks in and stores it as a new, enabled trigger.
func (s *Scheduler) Create(ctx context.Context, in CreateInput) (Trigger, error) {
	if !nameRe.MatchString(in.Name) {
		return Trigger{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Trigger name %q: 1 to 64 letters, digits, - and _.", in.Name)
	}
	if _, err := schedule.Parse(in.Schedule, in.Timezone); err != nil {
		return Trigger{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "%v", err)
	}
	switch in.CatchUp {
	case "":
		in.CatchUp = CatchUpLast
	case CatchUpLast, CatchUpNone:
	default:
		return Trigger{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "CatchUp %q: want %q or %q.", in.CatchUp, CatchUpLast, CatchUpNone)
	}
	if len(in.Input) > 0 && !json.Valid(in.Input) {
		return Trigger{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Input must be JSON (it is the event each firing sends).")
	}
	if len(in.Input) > events.MaxPayload {
		return Trigger{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Input is over %d bytes.", events.MaxPayload)
	}
	fn, q, err := registry.ParseName(in.Function)
	if err != nil {
		return Trigger{}, err
	}
	if _, err := s.fns.ResolveForInvoke(ctx, fn, q, 0); err != nil {
		return Trigger{}, err
	}
	t := Trigger{Name: in.Name, Schedule: in.Schedule, Timezone: in.Timezone, Function: fn, Qualifier: q,
		Input: in.Input, CatchUp: in.CatchUp, Created: time.Now().UTC().Truncate(time.Millisecond), State: Enabled}
	data, err := json.Marshal(t)
	if err != nil {
		return Trigger{}, err
	}
	if _, err := s.kv.Create(ctx, t.Name, data); errors.Is(err, jetstream.ErrKeyExists) {
		return Trigger{}, lambdaerr.New(lambdaerr.ResourceConflict, "Trigger %s already exists.", t.Name)
	} else if err != nil {
		return Trigger{}, fmt.Errorf("storing trigger %s: %w", t.Name, err)
	}
	s.poke()
	return t, nil
}

// Get returns the trigger named name.
func (s *Scheduler) Get(ctx context.Context, name string) (Trigger, error) {
	t, _, err := s.load(ctx, name)
	return t, err
}

func (s *Scheduler) load(ctx context.Context, name string) (Trigger, uint64, error) {
	var t Trigger
	if !nameRe.MatchString(name) {
		return t, 0, lambdaerr.New(lambdaerr.InvalidParameterValue, "Trigger name %q: 1 to 64 letters, digits, - and _.", name)
	}
	e, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return t, 0, lambdaerr.New(lambdaerr.ResourceNotFound, "Trigger not found: %s", name)
	}
	if err != nil {
		return t, 0, fmt.Errorf("reading trigger %s: %w", name, err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, 0, fmt.Errorf("decoding trigger %s: %w", name, err)
	}
	return t, e.Revision(), nil
}

// List returns every trigger, by name.
func (s *Scheduler) List(ctx context.Context) ([]Trigger, error) {
	keys, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing triggers: %w", err)
	}
	var out []Trigger
	for name := range keys.Keys() {
		t, _, err := s.load(ctx, name)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Delete removes the trigger named name; it fires no more.
func (s *Scheduler) Delete(ctx context.Context, name string) error {
	if _, err := s.Get(ctx, name); err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, name); err != nil {
		return fmt.Errorf("deleting trigger %s: %w", name, err)
	}
	s.poke()
	return nil
}

// ARN is the trigger's ARN (an EventBridge Scheduler schedule's form),
// the source of its events.
func (s *Scheduler) ARN(name string) string {
	return fmt.Sprintf("arn:aws:scheduler:%s:%s:schedule/default/%s", s.opts.Region, s.opts.AccountID, name)
}

// Stats count firings since the start: stored, missed (while Owl was
// down, beyond the catch-up policy) and triggers stopped (their function
// gone).
type Stats struct{ Fired, Missed, Stopped int64 }

// Stats reports what the scheduler did.
func (s *Scheduler) Stats() Stats {
	return Stats{Fired: s.fired.Load(), Missed: s.missed.Load(), Stopped: s.stopped.Load()}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the scheduler until Close.
func (s *Scheduler) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		for {
			wait := s.tick(ctx)
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-s.wake:
			case <-timer.C:
			}
			timer.Stop()
		}
	}()
}

// Close stops the scheduler; a firing being stored finishes first.
func (s *Scheduler) Close() {
	s.once.Do(func() {
		if s.cancel == nil {
			close(s.done)
			return
		}
		s.cancel()
	})
	<-s.done
}

// tick fires what is due and returns how long to wait for the next.
func (s *Scheduler) tick(ctx context.Context) time.Duration {
	wait := time.Minute
	ts, err := s.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading triggers", "err", err)
		}
		return 5 * time.Second
	}
	for _, t := range ts {
		next, ok := s.fireDue(ctx, t)
		if ok {
			wait = min(wait, max(time.Until(next), 0))
		}
	}
	return wait
}

// fireDue fires t's next firing if it is due, and returns the one after.
// A firing up to a minute late (a busy machine, a restart) still fires;
// older ones were missed while Owl was down, and the catch-up policy
// says whether the latest of them fires.
func (s *Scheduler) fireDue(ctx context.Context, t Trigger) (time.Time, bool) {
	next, ok := t.Next()
	now := time.Now()
	if !ok || next.After(now) {
		return next, ok
	}
	sched, _ := schedule.Parse(t.Schedule, t.Timezone) // Next parsed it
	at := next
	if now.Sub(next) > lateness {
		at, _ = sched.Last(now, t.Created)
		missed := s.countMissed(sched, t, next, at)
		if t.CatchUp == CatchUpNone && now.Sub(at) > lateness {
			missed++ // at too: it is skipped below
		}
		s.missed.Add(int64(missed))
		s.log.Warn("a schedule missed firings while Owl was not running", "trigger", t.Name, "missed", missed,
			"from", next, "catch_up", t.CatchUp)
		if t.CatchUp == CatchUpNone && now.Sub(at) > lateness {
			s.advance(ctx, t, at, false)
			return sched.Next(at, t.Created)
		}
	}
	if err := s.fire(ctx, t, at); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("a schedule's event was not stored; trying again", "trigger", t.Name, "firing", at, "err", err)
		}
		return now.Add(5 * time.Second), true
	}
	return sched.Next(at, t.Created)
}

// countMissed counts the firings from next up to, not including, due
// (capped: a rate of a second down for a week is a number, not a list).
func (s *Scheduler) countMissed(sched schedule.Schedule, t Trigger, next, due time.Time) int {
	n := 0
	for at := next; at.Before(due) && n < 100000; n++ {
		var ok bool
		if at, ok = sched.Next(at, t.Created); !ok {
			break
		}
	}
	return n
}

// fire stores the event of t's firing at time at (once: its request id
// is derived from both) and records the firing in t.
func (s *Scheduler) fire(ctx context.Context, t Trigger, at time.Time) error {
	if _, err := s.fns.ResolveForInvoke(ctx, t.Function, t.Qualifier, 0); lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		s.stop(ctx, t, err)
		return nil
	} else if err != nil {
		return err
	}
	id := firingID(t, at)
	stored, err := s.sink.Has(ctx, t.Function, id)
	if err != nil {
		return err
	}
	if !stored {
		ev := events.Event{RequestID: id, Function: t.Function, Qualifier: t.Qualifier, Payload: s.payload(t, at, id),
			TraceID: tracing.NewHeader()} // each firing its own trace, as EventBridge Scheduler's
		if err := s.sink.EnqueueFrom(ctx, ev, events.TypeSchedule, s.ARN(t.Name)); err != nil {
			return err
		}
		s.fired.Add(1)
	}
	s.advance(ctx, t, at, true)
	return nil
}

// advance records that t's firing at is done (fired or skipped), with a
// compare-and-set: a trigger changed or deleted meanwhile is left as it is.
func (s *Scheduler) advance(ctx context.Context, t Trigger, at time.Time, fired bool) {
	cur, rev, err := s.load(ctx, t.Name)
	if err != nil || !cur.Created.Equal(t.Created) {
		return
	}
	cur.LastFiring = at
	if sched, err := schedule.Parse(cur.Schedule, cur.Timezone); err == nil && sched.Kind == schedule.At {
		cur.State = Completed
		if !fired {
			cur.Reason = "its moment passed while Owl was not running (catch-up none)"
		}
	}
	s.update(ctx, cur, rev)
}

// stop marks t stopped because its function is gone.
func (s *Scheduler) stop(ctx context.Context, t Trigger, cause error) {
	cur, rev, err := s.load(ctx, t.Name)
	if err != nil || !cur.Created.Equal(t.Created) {
		return
	}
	cur.State = FunctionNotFound
	cur.Reason = fmt.Sprintf("stopped at %s: %v", time.Now().UTC().Format(time.RFC3339), cause)
	s.stopped.Add(1)
	s.log.Warn("a schedule stopped: its function is gone", "trigger", t.Name, "function", t.Function, "err", cause)
	s.update(ctx, cur, rev)
}

func (s *Scheduler) update(ctx context.Context, t Trigger, rev uint64) {
	data, err := json.Marshal(t)
	if err == nil {
		_, err = s.kv.Update(ctx, t.Name, data, rev)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Debug("updating trigger (changed meanwhile?)", "trigger", t.Name, "err", err)
	}
}

// payload is the event of a firing: the trigger's constant input, or the
// Scheduled Event EventBridge sends Lambda (aws-lambda-go's
// CloudWatchEvent, as functions written for scheduled rules parse it).
func (s *Scheduler) payload(t Trigger, at time.Time, id string) json.RawMessage {
	if len(t.Input) > 0 {
		return t.Input
	}
	b, _ := json.Marshal(lambdaevents.CloudWatchEvent{
		Version: "0", ID: id, DetailType: "Scheduled Event", Source: "aws.scheduler",
		AccountID: s.opts.AccountID, Time: at.UTC(), Region: s.opts.Region,
		Resources: []string{s.ARN(t.Name)}, Detail: json.RawMessage("{}"),
	})
	return b
}

// firingID is the request id of t's firing at at: a UUID-shaped digest
// of the trigger (its name and creation) and the time.
func firingID(t Trigger, at time.Time) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", t.Name, t.Created.UnixNano(), at.UnixNano()))
	h := hex.EncodeToString(sum[:16])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
