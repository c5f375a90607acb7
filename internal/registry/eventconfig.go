package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// EventInvokeConfig is a function's (qualifier's) asynchronous invocation configuration.
type EventInvokeConfig struct {
	FunctionName             string    `json:"function_name"`
	Qualifier                string    `json:"qualifier"`                           // "$LATEST", a version number or an alias
	MaximumRetryAttempts     *int      `json:"maximum_retry_attempts,omitempty"`    // 0-2; nil: Lambda's default 2
	MaximumEventAgeInSeconds *int      `json:"maximum_event_age_seconds,omitempty"` // 60-21600; nil: 21600
	OnSuccess                string    `json:"on_success,omitempty"`                // destination ARN, "" for none
	OnFailure                string    `json:"on_failure,omitempty"`
	LastModified             time.Time `json:"last_modified"`
}

// Limits and defaults of event invoke configs (Lambda's).
const (
	MaxEventRetries        = 2
	MinEventAgeSeconds     = 60
	MaxEventAgeSeconds     = 21600
	defaultEventRetries    = MaxEventRetries
	defaultEventAgeSeconds = MaxEventAgeSeconds
)

// Retries is how many times a failed asynchronous invocation is retried.
func (c EventInvokeConfig) Retries() int {
	if c.MaximumRetryAttempts == nil {
		return defaultEventRetries
	}
	return *c.MaximumRetryAttempts
}

// MaxAge is how long an event may wait to be delivered before it is
// discarded (or sent to OnFailure).
func (c EventInvokeConfig) MaxAge() time.Duration {
	if c.MaximumEventAgeInSeconds == nil {
		return defaultEventAgeSeconds * time.Second
	}
	return time.Duration(*c.MaximumEventAgeInSeconds) * time.Second
}

func (c EventInvokeConfig) owner() (name, qualifier string) { return c.FunctionName, c.Qualifier }

// EventInvokeConfigInput is what a Put or Update request gives; nil fields
// were not given (Put: unset; Update: unchanged). A destination given as
// "" removes it.
type EventInvokeConfigInput struct {
	MaximumRetryAttempts     *int
	MaximumEventAgeInSeconds *int
	OnSuccess                *string
	OnFailure                *string
}

// NATSDestinationPrefix starts Owl's destination ARN for a NATS subject:
// arn:owl:nats:::<subject>.
const NATSDestinationPrefix = "arn:owl:nats:::"

// maxSubjectLen bounds a NATS destination's subject, in bytes.
const maxSubjectLen = 255

// NATSSubject returns the subject of a NATS destination ARN; ok is false
// for any other destination.
func NATSSubject(destination string) (subject string, ok bool) {
	return strings.CutPrefix(destination, NATSDestinationPrefix)
}

func eventConfigKey(name, qualifier string) string {
	if qualifier == "" || qualifier == Latest {
		qualifier = "=latest"
	}
	return eventConfigPrefix + name + "." + qualifier
}

// AsyncConfig is the config that applies to an invocation of
// name:qualifier (qualifier "" means $LATEST), read from the registry's
// in-memory mirror (no store round trip; the delivery loop calls it per
// event); the zero config with FunctionName/Qualifier set when none is
// stored.
func (r *Registry) AsyncConfig(name, qualifier string) EventInvokeConfig {
	if qualifier == "" {
		qualifier = Latest
	}
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	if c, ok := r.cache.eventConfigs[eventConfigKey(name, qualifier)]; ok {
		return c
	}
	return EventInvokeConfig{FunctionName: name, Qualifier: qualifier}
}

// PutEventInvokeConfig sets name:qualifier's event invoke config: with
// merge false it replaces the config (PutFunctionEventInvokeConfig), with
// merge true it changes only the fields given
// (UpdateFunctionEventInvokeConfig; there must be a config to update).
func (r *Registry) PutEventInvokeConfig(ctx context.Context, name, qualifier string, in EventInvokeConfigInput, merge bool) (EventInvokeConfig, error) {
	if err := checkEventLimits(in); err != nil {
		return EventInvokeConfig{}, err
	}
	qualifier, err := r.eventQualifier(ctx, name, qualifier)
	if err != nil {
		return EventInvokeConfig{}, err
	}
	for _, d := range []*string{in.OnSuccess, in.OnFailure} {
		if d != nil && *d != "" {
			if err := r.CheckDestination(ctx, name, *d); err != nil {
				return EventInvokeConfig{}, err
			}
		}
	}
	if err := r.writable(); err != nil {
		return EventInvokeConfig{}, err
	}
	key := eventConfigKey(name, qualifier)
	c := EventInvokeConfig{FunctionName: name, Qualifier: qualifier}
	var rev uint64
	if merge {
		if rev, err = r.read(ctx, key, &c); lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			return EventInvokeConfig{}, r.noEventConfig(name, qualifier)
		} else if err != nil {
			return EventInvokeConfig{}, err
		}
	}
	setIf(&c.MaximumRetryAttempts, in.MaximumRetryAttempts)
	setIf(&c.MaximumEventAgeInSeconds, in.MaximumEventAgeInSeconds)
	if in.OnSuccess != nil {
		c.OnSuccess = *in.OnSuccess
	}
	if in.OnFailure != nil {
		c.OnFailure = *in.OnFailure
	}
	c.LastModified = r.opts.Now().UTC()
	if err := r.putConfig(ctx, key, c, rev); err != nil {
		return EventInvokeConfig{}, err
	}
	return c, nil
}

func setIf(dst **int, v *int) {
	if v != nil {
		n := *v
		*dst = &n
	}
}

func checkEventLimits(in EventInvokeConfigInput) error {
	if in.MaximumRetryAttempts != nil {
		if err := lambdaerr.IntRange(*in.MaximumRetryAttempts, "maximumRetryAttempts", 0, MaxEventRetries); err != nil {
			return err
		}
	}
	if in.MaximumEventAgeInSeconds != nil {
		return lambdaerr.IntRange(*in.MaximumEventAgeInSeconds, "maximumEventAgeInSeconds", MinEventAgeSeconds, MaxEventAgeSeconds)
	}
	return nil
}

// eventQualifier checks that name:qualifier exists and returns the
// qualifier as configs store it ($LATEST for "").
func (r *Registry) eventQualifier(ctx context.Context, name, qualifier string) (string, error) {
	if _, err := r.Resolve(ctx, name, qualifier); err != nil {
		return "", err
	}
	if qualifier == "" {
		return Latest, nil
	}
	return qualifier, nil
}

func (r *Registry) noEventConfig(name, qualifier string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "The function %s doesn't have an EventInvokeConfig", r.ARN(name, qualifier))
}

// CheckDestination accepts, as where to send an event's outcome (an event
// invoke config's destination, a function's dead-letter target), an
// existing function of Owl's other than name itself, or a NATS subject
// outside Owl's own.
func (r *Registry) CheckDestination(ctx context.Context, name, dest string) error {
	if subject, ok := NATSSubject(dest); ok {
		return checkSubject(dest, subject)
	}
	parts := strings.SplitN(dest, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return lambdaerr.ValidationFailed(dest, "destination",
			`Member must satisfy regular expression pattern: ^$|arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)`)
	}
	if parts[2] != "lambda" {
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Owl does not support destination type %s (%s); use a function ARN or %s<subject>", parts[2], dest, NATSDestinationPrefix)
	}
	fn, q, err := ParseName(dest)
	if err != nil || parts[3] != r.opts.Region || parts[4] != r.opts.AccountID {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "The destination function %s does not exist.", dest)
	}
	if fn == name {
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"The destination %s is the function this configuration belongs to: that would be an event loop.", dest)
	}
	if _, err := r.Resolve(ctx, fn, q); lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "The destination function %s does not exist.", dest)
	} else if err != nil {
		return err
	}
	return nil
}

// checkSubject accepts a literal NATS subject (no wildcards) outside the
// '$' system subjects and Owl's own (owl.…).
func checkSubject(dest, subject string) error {
	bad := func(why string) error {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "The destination %s is not a valid NATS subject: %s.", dest, why)
	}
	if len(subject) > maxSubjectLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxSubjectLen))
	}
	if strings.HasPrefix(subject, "$") {
		return bad("subjects starting with '$' are the system's")
	}
	tokens := strings.Split(subject, ".")
	if tokens[0] == "owl" {
		return bad("subjects starting with 'owl.' are Owl's own")
	}
	for _, tok := range tokens {
		if tok == "" {
			return bad("empty token")
		}
		for _, c := range tok {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return bad(fmt.Sprintf("tokens are made of letters, digits, '_' and '-' (found %q)", c))
			}
		}
	}
	return nil
}

// GetEventInvokeConfig returns name:qualifier's event invoke config.
func (r *Registry) GetEventInvokeConfig(ctx context.Context, name, qualifier string) (EventInvokeConfig, error) {
	qualifier, err := r.eventQualifier(ctx, name, qualifier)
	if err != nil {
		return EventInvokeConfig{}, err
	}
	c, err := loadConfig(ctx, r, eventConfigKey(name, qualifier), r.cache.eventConfigs)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return EventInvokeConfig{}, r.noEventConfig(name, qualifier)
	}
	return c, err
}

// ListEventInvokeConfigs returns a function's event invoke configs,
// sorted by qualifier.
func (r *Registry) ListEventInvokeConfigs(ctx context.Context, name string) ([]EventInvokeConfig, error) {
	if _, err := r.Get(ctx, name); err != nil {
		return nil, err
	}
	return configsOf(&r.cache.mu, r.cache.eventConfigs, name), nil
}

// DeleteEventInvokeConfig removes name:qualifier's event invoke config.
func (r *Registry) DeleteEventInvokeConfig(ctx context.Context, name, qualifier string) error {
	c, err := r.GetEventInvokeConfig(ctx, name, qualifier)
	if err != nil {
		return err
	}
	return r.deleteConfig(ctx, eventConfigKey(name, c.Qualifier))
}

// Per-qualifier configs (provisioned concurrency, event invoke) share how
// they are stored, mirrored, listed and deleted.

// putConfig stores v under key (with rev not 0, only if key is still at
// that revision), mirrors it in the cache and waits for the watcher.
func (r *Registry) putConfig(ctx context.Context, key string, v perQualifier, rev uint64) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	var newRev uint64
	if rev == 0 {
		newRev, err = r.kv.Put(ctx, key, data)
	} else {
		newRev, err = r.kv.Update(ctx, key, data, rev)
	}
	if conflict(err) {
		return r.updateInProgress(r.ARN(v.owner()))
	}
	if err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	r.cache.put(key, v, newRev)
	r.settle(ctx, newRev)
	return nil
}

// deleteConfig deletes the config at key and waits for the watcher.
func (r *Registry) deleteConfig(ctx context.Context, key string) error {
	if err := r.deleteKey(ctx, key); err != nil {
		return err
	}
	r.settle(ctx, 0)
	return nil
}

// loadConfig returns the config at key from the cache's index or, on a
// miss (the watcher may lag a write of another node), from the bucket.
func loadConfig[T any](ctx context.Context, r *Registry, key string, index map[string]T) (T, error) {
	r.cache.mu.RLock()
	c, ok := index[key]
	r.cache.mu.RUnlock()
	if ok {
		return c, nil
	}
	var stored T
	if _, err := r.read(ctx, key, &stored); err != nil {
		return stored, err
	}
	return stored, nil
}

type perQualifier interface {
	owner() (name, qualifier string)
}

// configsOf returns name's configs in index (guarded by mu), sorted by qualifier.
func configsOf[T perQualifier](mu *sync.RWMutex, index map[string]T, name string) []T {
	mu.RLock()
	var out []T
	for _, c := range index {
		if n, _ := c.owner(); n == name {
			out = append(out, c)
		}
	}
	mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		_, qi := out[i].owner()
		_, qj := out[j].owner()
		return qi < qj
	})
	return out
}

// deleteConfigsOf deletes name's provisioned concurrency, event invoke
// and function URL configs of qualifier (every qualifier's when it is
// empty).
func (r *Registry) deleteConfigsOf(ctx context.Context, name, qualifier string) error {
	for _, prefix := range []string{provisionedPrefix, eventConfigPrefix, urlPrefix} {
		keys, err := r.keys(ctx, prefix+name+".*")
		if err != nil {
			return err
		}
		for _, k := range keys {
			if qualifier != "" && k != prefix+name+"."+qualifier {
				continue
			}
			if err := r.deleteKey(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				return err
			}
		}
	}
	return nil
}
