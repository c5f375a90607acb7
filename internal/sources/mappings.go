package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/tracing"
)

const (
	bucket = "OWL_MAPPINGS"
	// captureStream holds the messages of every subject a mapping reads,
	// until they age out (the mappings' consumers track what they read).
	captureStream = "OWL_SUBJECTS"
	// idleSubject keeps the capture stream valid while no mapping needs
	// a subject (a stream must have one); no one publishes on it.
	idleSubject = "owl.sources.idle"
	// ARNPrefix starts a NATS subject source's ARN.
	ARNPrefix = "arn:owl:nats:::"
	// StreamARNPrefix starts the ARN of a JetStream stream of the user's
	// own: arn:owl:jetstream:::<stream>, or <stream>/<subject filter>.
	StreamARNPrefix = "arn:owl:jetstream:::"
)

// Limits and defaults (Lambda's, for stream sources).
const (
	DefaultBatchSize = 10
	MaxBatchSize     = 10000
	MaxBatchWindow   = 300
	DefaultRetries   = 2 // Owl's: Lambda's streams retry until the record expires (-1)
	MaxRetries       = 10000
	MaxFilters       = 5
)

// Mapping reads a NATS subject, or a JetStream stream of the user's own,
// and invokes a function with its messages.
type Mapping struct {
	UUID string `json:"uuid"`
	// Subject is the subject read; with Stream, the filter inside the
	// stream ("": all of it).
	Subject   string `json:"subject"`
	Stream    string `json:"stream,omitempty"`
	Function  string `json:"function"`
	Qualifier string `json:"qualifier,omitempty"`
	Enabled   bool   `json:"enabled"`
	BatchSize int    `json:"batch_size"`
	// BatchWindow is how long a batch may wait to fill
	// (MaximumBatchingWindowInSeconds).
	BatchWindow int      `json:"batch_window"`
	Filters     []string `json:"filters,omitempty"`
	OnFailure   string   `json:"on_failure,omitempty"`
	// MaxRetries is how often a failed message is retried; -1: until it
	// ages out of the capture stream.
	MaxRetries         int    `json:"max_retries"`
	Bisect             bool   `json:"bisect,omitempty"`
	ReportItemFailures bool   `json:"report_item_failures,omitempty"`
	StartingPosition   string `json:"starting_position"`
	// StartingTimestamp is where AT_TIMESTAMP starts.
	StartingTimestamp time.Time `json:"starting_timestamp,omitzero"`
	LastModified      time.Time `json:"last_modified"`
	StateReason       string    `json:"state_reason,omitempty"`
}

// ARN is the mapping's source ARN.
func (m Mapping) ARN() string {
	switch {
	case m.Stream == "":
		return ARNPrefix + m.Subject
	case m.Subject == "":
		return StreamARNPrefix + m.Stream
	}
	return StreamARNPrefix + m.Stream + "/" + m.Subject
}

// ParseSourceARN reads a mapping's source ARN: a NATS subject
// (arn:owl:nats:::<subject>, stream ""), or a JetStream stream of the
// user's own with an optional subject filter
// (arn:owl:jetstream:::<stream>[/<filter>]). Owl's own streams are
// refused.
func ParseSourceARN(arn string) (stream, subject string, err error) {
	if subject, ok := strings.CutPrefix(arn, ARNPrefix); ok {
		return "", subject, checkSubject(subject)
	}
	rest, ok := strings.CutPrefix(arn, StreamARNPrefix)
	if !ok {
		return "", "", lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Owl's event sources are NATS subjects, %s<subject> (wildcards * and > allowed), or JetStream streams, %s<stream>[/<subject filter>]; not %s",
			ARNPrefix, StreamARNPrefix, arn)
	}
	stream, subject, filtered := strings.Cut(rest, "/")
	if err := checkStreamName(stream); err != nil {
		return "", "", err
	}
	if filtered {
		if err := checkSubject(subject); err != nil {
			return "", "", err
		}
	}
	return stream, subject, nil
}

// checkStream checks that the user's stream is there (Lambda's answer
// for a Kinesis stream that is not: "Stream not found") and that the
// subject filter, when given, reads some of its subjects.
func (m *Mappings) checkStream(ctx context.Context, arn, stream, filter string) error {
	s, err := m.js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Stream not found: %s", arn)
	}
	if err != nil {
		return fmt.Errorf("looking up stream %s: %w", stream, err)
	}
	subjects := s.CachedInfo().Config.Subjects
	if filter == "" || len(subjects) == 0 {
		return nil
	}
	for _, sub := range subjects {
		if subset(filter, sub) || subset(sub, filter) {
			return nil
		}
	}
	return lambdaerr.New(lambdaerr.InvalidParameterValue, "Cannot read %s: stream %s holds %s, not %s.",
		arn, stream, strings.Join(subjects, ", "), filter)
}

// checkStreamName accepts a JetStream stream name that is not Owl's own
// (OWL_…, and its KV buckets' and object stores' KV_OWL_…, OBJ_OWL_…).
func checkStreamName(name string) error {
	bad := func(why string) error {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "%s%s is not a JetStream stream to read: %s.", StreamARNPrefix, name, why)
	}
	if name == "" || len(name) > 255 {
		return bad("a stream name is 1 to 255 bytes")
	}
	if strings.ContainsAny(name, ".*> \t\r\n\\/") {
		return bad("a stream name has no '.', '*', '>', '/', '\\' or white space")
	}
	up := strings.ToUpper(name)
	for _, own := range []string{"OWL_", "KV_OWL_", "OBJ_OWL_"} {
		if strings.HasPrefix(up, own) {
			return bad("streams named " + own + "… are Owl's own")
		}
	}
	return nil
}

// Input creates or changes a mapping; nil fields were not given.
type Input struct {
	EventSourceArn     *string
	FunctionName       *string
	Enabled            *bool
	BatchSize          *int
	BatchWindow        *int
	Filters            *[]string
	OnFailure          *string
	MaxRetries         *int
	Bisect             *bool
	ReportItemFailures *bool
	StartingPosition   *string
	StartingTimestamp  *time.Time
}

// Functions is what the mappings read of the registry.
type Functions interface {
	ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (registry.Target, error)
	CheckDestination(ctx context.Context, name, dest string) error
	ARN(name, qualifier string) string
	RecursionAllowed(name string) bool
}

// Options configure the mappings.
type Options struct {
	// MaxAge and MaxBytes bound the capture stream.
	MaxAge   time.Duration
	MaxBytes int64
	// Region and AccountID are the mappings' ARNs'.
	Region, AccountID string
	// RetryDelay is the first wait before a failed batch is retried; it
	// doubles per attempt (tests shorten it).
	RetryDelay time.Duration
	Logger     *slog.Logger
	// StreamBytes bounds what the user's own streams (CreateStream) may
	// hold together.
	StreamBytes int64
}

// Mappings keeps the event source mappings and runs a poller for each
// enabled one.
type Mappings struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	fns     Functions
	inv     events.Invoker
	q       *events.Queue
	publish func(subject string, data []byte) error
	opts    Options
	log     *slog.Logger

	streamsMu sync.Mutex // one CreateStream at a time

	mu      sync.Mutex
	stream  jetstream.Stream
	pollers map[string]*poller   // by UUID
	watch   jetstream.KeyWatcher // the bucket's changes, for follow
	closed  bool
	stats   counters
}

// Open opens the mappings and starts their pollers.
func Open(ctx context.Context, js jetstream.JetStream, fns Functions, inv events.Invoker, q *events.Queue,
	publish func(subject string, data []byte) error, opts Options) (*Mappings, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Owl's event source mappings (NATS subjects to functions)", History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", bucket, err)
	}
	m := &Mappings{js: js, kv: kv, fns: fns, inv: inv, q: q, publish: publish, opts: opts, log: opts.Logger, pollers: map[string]*poller{}}
	all, err := m.List(ctx, "", "")
	if err != nil {
		return nil, err
	}
	if err := m.capture(ctx, all); err != nil {
		return nil, err
	}
	for _, mp := range all {
		m.sync(mp)
	}
	// Mappings another node (of a cluster sharing the bucket) creates,
	// changes or deletes start, restart or stop their pollers here too:
	// every node polls every mapping, through its one shared consumer.
	if m.watch, err = kv.WatchAll(context.Background(), jetstream.UpdatesOnly()); err != nil {
		return nil, fmt.Errorf("watching the mappings: %w", err)
	}
	go m.follow(m.watch)
	return m, nil
}

// follow applies the mappings' changes from w to the pollers, skipping
// the versions a poller already runs (this node's own changes).
func (m *Mappings) follow(w jetstream.KeyWatcher) {
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		mp := Mapping{UUID: e.Key()} // deleted: not Enabled, its poller stops
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &mp) != nil {
			continue
		}
		m.mu.Lock()
		p := m.pollers[mp.UUID]
		same := p != nil && mp.Enabled && p.mp.LastModified.Equal(mp.LastModified)
		m.mu.Unlock()
		if !same && (p != nil || mp.Enabled) {
			m.sync(mp)
		}
	}
}

// Close stops every poller; their batches in flight are redelivered later.
func (m *Mappings) Close() {
	if m.watch != nil {
		_ = m.watch.Stop()
	}
	m.mu.Lock()
	m.closed = true
	ps := m.pollers
	m.pollers = map[string]*poller{}
	m.mu.Unlock()
	for _, p := range ps {
		p.stop()
	}
}

// Create stores a new mapping and starts reading its subject.
func (m *Mappings) Create(ctx context.Context, in Input) (Mapping, error) {
	if in.EventSourceArn == nil || in.FunctionName == nil {
		return Mapping{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "EventSourceArn and FunctionName are required.")
	}
	mp := Mapping{UUID: lambdawire.NewRequestID(), Enabled: true, BatchSize: DefaultBatchSize, MaxRetries: DefaultRetries, StartingPosition: "LATEST"}
	if err := m.apply(ctx, &mp, in); err != nil {
		return Mapping{}, err
	}
	all, err := m.List(ctx, "", "")
	if err != nil {
		return Mapping{}, err
	}
	if err := m.capture(ctx, append(all, mp)); err != nil {
		return Mapping{}, err
	}
	if _, err := m.consumer(ctx, mp); err != nil {
		if mp.Stream != "" { // the user's stream refused it: a filter outside its subjects
			return Mapping{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Cannot read %s: %v", mp.ARN(), err)
		}
		return Mapping{}, fmt.Errorf("creating the consumer of mapping %s: %w", mp.UUID, err)
	}
	if err := m.put(ctx, &mp, 0); err != nil {
		return Mapping{}, err
	}
	m.sync(mp)
	return mp, nil
}

// Update changes what in gives of the mapping uuid.
func (m *Mappings) Update(ctx context.Context, uuid string, in Input) (Mapping, error) {
	mp, rev, err := m.load(ctx, uuid)
	if err != nil {
		return Mapping{}, err
	}
	if in.EventSourceArn != nil && *in.EventSourceArn != mp.ARN() {
		return Mapping{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "The event source of a mapping cannot be changed; create another mapping.")
	}
	if err := m.apply(ctx, &mp, in); err != nil {
		return Mapping{}, err
	}
	if err := m.put(ctx, &mp, rev); err != nil {
		return Mapping{}, err
	}
	m.sync(mp)
	return mp, nil
}

// Get returns the mapping uuid.
func (m *Mappings) Get(ctx context.Context, uuid string) (Mapping, error) {
	mp, _, err := m.load(ctx, uuid)
	return mp, err
}

// Delete removes the mapping uuid and its consumer.
func (m *Mappings) Delete(ctx context.Context, uuid string) (Mapping, error) {
	mp, _, err := m.load(ctx, uuid)
	if err != nil {
		return Mapping{}, err
	}
	if err := m.kv.Purge(ctx, uuid); err != nil {
		return Mapping{}, fmt.Errorf("deleting mapping %s: %w", uuid, err)
	}
	mp.Enabled = false
	m.sync(mp)
	if s, err := m.sourceStream(ctx, mp); err == nil {
		if err := s.DeleteConsumer(ctx, consumerName(uuid)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			m.log.Warn("deleting a mapping's consumer", "uuid", uuid, "err", err)
		}
	}
	// Stop capturing a subject no mapping reads any more.
	if rest, err := m.List(ctx, "", ""); err == nil {
		if err := m.capture(ctx, rest); err != nil {
			m.log.Warn("narrowing the captured subjects", "err", err)
		}
	}
	return mp, nil
}

// List returns the mappings of function (any: "") and source ARN (any: "").
func (m *Mappings) List(ctx context.Context, function, arn string) ([]Mapping, error) {
	keys, err := m.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing mappings: %w", err)
	}
	var out []Mapping
	for k := range keys.Keys() {
		mp, _, err := m.load(ctx, k)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if (function == "" || mp.Function == function) && (arn == "" || mp.ARN() == arn) {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out, nil
}

func (m *Mappings) load(ctx context.Context, uuid string) (Mapping, uint64, error) {
	var mp Mapping
	if !validUUID(uuid) {
		return mp, 0, lambdaerr.New(lambdaerr.ResourceNotFound, "The resource you requested does not exist. (Event source mapping %s)", uuid)
	}
	e, err := m.kv.Get(ctx, uuid)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return mp, 0, lambdaerr.New(lambdaerr.ResourceNotFound, "The resource you requested does not exist. (Event source mapping %s)", uuid)
	}
	if err != nil {
		return mp, 0, fmt.Errorf("reading mapping %s: %w", uuid, err)
	}
	if err := json.Unmarshal(e.Value(), &mp); err != nil {
		return mp, 0, fmt.Errorf("decoding mapping %s: %w", uuid, err)
	}
	return mp, e.Revision(), nil
}

// put stores mp, setting its LastModified (which the API answers with).
func (m *Mappings) put(ctx context.Context, mp *Mapping, rev uint64) error {
	mp.LastModified = time.Now().UTC()
	data, err := json.Marshal(mp)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = m.kv.Create(ctx, mp.UUID, data)
	} else {
		_, err = m.kv.Update(ctx, mp.UUID, data, rev)
	}
	if err != nil {
		return fmt.Errorf("storing mapping %s: %w", mp.UUID, err)
	}
	return nil
}

// apply checks in and sets what it gives on mp.
func (m *Mappings) apply(ctx context.Context, mp *Mapping, in Input) error {
	if in.EventSourceArn != nil {
		stream, subject, err := ParseSourceARN(*in.EventSourceArn)
		if err != nil {
			return err
		}
		if stream != "" {
			if err := m.checkStream(ctx, *in.EventSourceArn, stream, subject); err != nil {
				return err
			}
		}
		mp.Stream, mp.Subject = stream, subject
	}
	if in.FunctionName != nil {
		name, q, err := registry.ParseName(*in.FunctionName)
		if err != nil {
			return err
		}
		if _, err := m.fns.ResolveForInvoke(ctx, name, q, 0); err != nil {
			return err
		}
		mp.Function, mp.Qualifier = name, q
	}
	for _, c := range []struct {
		v        *int
		dst      *int
		name     string
		min, max int
	}{
		{in.BatchSize, &mp.BatchSize, "BatchSize", 1, MaxBatchSize},
		{in.BatchWindow, &mp.BatchWindow, "MaximumBatchingWindowInSeconds", 0, MaxBatchWindow},
		{in.MaxRetries, &mp.MaxRetries, "MaximumRetryAttempts", -1, MaxRetries},
	} {
		if c.v == nil {
			continue
		}
		if *c.v < c.min || *c.v > c.max {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "%s %d: must be from %d to %d.", c.name, *c.v, c.min, c.max)
		}
		*c.dst = *c.v
	}
	if in.Filters != nil {
		if len(*in.Filters) > MaxFilters {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "FilterCriteria takes at most %d filters.", MaxFilters)
		}
		for _, f := range *in.Filters {
			if _, err := ParsePattern(f); err != nil {
				return lambdaerr.New(lambdaerr.InvalidParameterValue, "Invalid filter pattern %s: %v", f, err)
			}
		}
		mp.Filters = *in.Filters
	}
	if in.OnFailure != nil {
		if *in.OnFailure != "" {
			if err := m.fns.CheckDestination(ctx, mp.Function, *in.OnFailure); err != nil {
				return err
			}
		}
		mp.OnFailure = *in.OnFailure
	}
	if err := startingPosition(mp, in); err != nil {
		return err
	}
	setBool(&mp.Enabled, in.Enabled)
	setBool(&mp.Bisect, in.Bisect)
	setBool(&mp.ReportItemFailures, in.ReportItemFailures)
	return nil
}

// startingPosition sets where mp starts reading: LATEST, TRIM_HORIZON, or
// AT_TIMESTAMP with its StartingPositionTimestamp.
func startingPosition(mp *Mapping, in Input) error {
	if in.StartingPosition != nil {
		switch *in.StartingPosition {
		case "LATEST", "TRIM_HORIZON", "AT_TIMESTAMP":
			mp.StartingPosition = *in.StartingPosition
		default:
			return lambdaerr.ValidationFailed(*in.StartingPosition, "startingPosition",
				"Member must satisfy enum value set: [LATEST, TRIM_HORIZON, AT_TIMESTAMP]")
		}
	}
	if in.StartingTimestamp != nil {
		mp.StartingTimestamp = *in.StartingTimestamp
	}
	switch {
	case mp.StartingPosition == "AT_TIMESTAMP" && mp.StartingTimestamp.IsZero():
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP.")
	case mp.StartingPosition != "AT_TIMESTAMP" && !mp.StartingTimestamp.IsZero():
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "StartingPositionTimestamp goes with StartingPosition AT_TIMESTAMP only.")
	}
	return nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// checkSubject accepts a NATS subject, wildcards included, outside the
// system's ($…) and Owl's own (owl.…).
func checkSubject(subject string) error {
	bad := func(why string) error {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "%s%s is not a valid NATS subject to read: %s.", ARNPrefix, subject, why)
	}
	if subject == "" || len(subject) > 255 {
		return bad("1 to 255 bytes")
	}
	if strings.HasPrefix(subject, "$") || subject == ">" || strings.HasPrefix(subject, "owl.") || subject == "owl" {
		return bad("subjects starting with $ or owl. are the system's and Owl's own")
	}
	tokens := strings.Split(subject, ".")
	for i, tok := range tokens {
		switch {
		case tok == "":
			return bad("empty token")
		case tok == ">" && i != len(tokens)-1:
			return bad("> must be the last token")
		case tok == "*" || tok == ">":
		default:
			for _, c := range tok {
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
					return bad(fmt.Sprintf("tokens are letters, digits, _ and -, or * and > (found %q)", c))
				}
			}
		}
	}
	return nil
}

// subset reports whether every subject a matches is one b matches.
func subset(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range bt {
		if t == ">" {
			return len(at) > i
		}
		if i >= len(at) || at[i] == ">" || (t != "*" && t != at[i]) || (t != "*" && at[i] == "*") {
			return false
		}
	}
	return len(at) == len(bt)
}

// cover is the fewest subjects that capture all of subjects.
func cover(subjects []string) []string {
	var out []string
	for i, s := range subjects {
		covered := false
		for j, o := range subjects {
			if i != j && subset(s, o) && (!subset(o, s) || j < i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// capture makes the capture stream take every subject of mps.
func (m *Mappings) capture(ctx context.Context, mps []Mapping) error {
	var subjects []string
	for _, mp := range mps {
		if mp.Stream == "" { // a stream of the user's own holds its messages itself
			subjects = append(subjects, mp.Subject)
		}
	}
	subjects = cover(subjects)
	if len(subjects) == 0 {
		subjects = []string{idleSubject}
	}
	s, err := m.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        captureStream,
		Description: "messages on the subjects Owl's event source mappings read",
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      m.opts.MaxAge,
		MaxBytes:    m.opts.MaxBytes,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Owl cannot capture subjects %s: %v", strings.Join(subjects, ", "), err)
	}
	m.mu.Lock()
	m.stream = s
	m.mu.Unlock()
	return nil
}

// sourceStream is the stream mp reads: the user's own, or the capture
// stream for a subject.
func (m *Mappings) sourceStream(ctx context.Context, mp Mapping) (jetstream.Stream, error) {
	if mp.Stream != "" {
		return m.js.Stream(ctx, mp.Stream)
	}
	if s := m.captureStream(); s != nil {
		return s, nil
	}
	return nil, errors.New("no capture stream")
}

func (m *Mappings) captureStream() jetstream.Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stream
}

// Chain headers carry a message's place in a chain of calls and events
// (a function published it): its depth and the chain's first request id.
const (
	HeaderDepth  = "Owl-Chain-Depth"
	HeaderOrigin = "Owl-Chain-Origin"
)

// Publish publishes data on subject: stored in the capture stream when a
// mapping reads it (stored is true, with its sequence), else sent on
// core NATS to whoever listens. depth and origin, for a function's own
// publish, go in the chain headers; trace (an X-Ray header), when set, in
// X-Amzn-Trace-Id, which the mapping's invocation goes on in.
func (m *Mappings) Publish(ctx context.Context, subject string, data []byte, depth int, origin, trace string) (seq uint64, stored bool, err error) {
	if err := checkPublishSubject(subject); err != nil {
		return 0, false, err
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	if depth > 0 {
		msg.Header.Set(HeaderDepth, strconv.Itoa(depth))
		msg.Header.Set(HeaderOrigin, origin)
	}
	if trace != "" {
		msg.Header.Set(tracing.HeaderXRay, trace)
	}
	ack, err := m.js.PublishMsg(ctx, msg)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return 0, false, m.publish(subject, data)
	}
	if err != nil {
		return 0, false, fmt.Errorf("publishing on %s: %w", subject, err)
	}
	return ack.Sequence, true, nil
}

func checkPublishSubject(subject string) error {
	if strings.ContainsAny(subject, "*>") {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "Publish on a subject without wildcards, not %s.", subject)
	}
	return checkSubject(subject)
}

// disable turns the mapping uuid off, saying why (its function is gone):
// its messages wait in the capture stream until it is enabled again.
func (m *Mappings) disable(uuid, reason string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mp, rev, err := m.load(ctx, uuid)
	if err != nil || !mp.Enabled {
		return
	}
	mp.Enabled, mp.StateReason = false, reason
	if err := m.put(ctx, &mp, rev); err != nil {
		m.log.Warn("disabling a mapping", "uuid", uuid, "err", err)
		return
	}
	m.log.Warn("a mapping stopped", "uuid", uuid, "function", mp.Function, "reason", reason)
	m.sync(mp)
}

// sync starts, restarts or stops mp's poller to match mp.
func (m *Mappings) sync(mp Mapping) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.pollers[mp.UUID]; old != nil {
		delete(m.pollers, mp.UUID)
		go old.stop()
	}
	if !mp.Enabled || m.closed || m.stream == nil {
		return
	}
	p := newPoller(m, mp)
	m.pollers[mp.UUID] = p
	go p.run()
}

func consumerName(uuid string) string { return "esm-" + uuid }

// arn is the ARN of the mapping uuid, as Lambda writes it.
func (m *Mappings) arn(uuid string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:event-source-mapping:%s", m.opts.Region, m.opts.AccountID, uuid)
}

// ARN is the ARN of the mapping uuid.
func (m *Mappings) ARN(uuid string) string { return m.arn(uuid) }

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
