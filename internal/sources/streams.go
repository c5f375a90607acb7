package sources

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// The user's own JetStream streams (Owl's /owl/v1/streams): the sources
// of stream mappings. Owl makes them, so that NATS clients outside Owl
// need no JetStream API (it would reach Owl's own streams); a stream
// holds at most its MaxBytes, and the user's streams together at most
// Options.StreamBytes, on file storage beside Owl's.

// DefaultStreamBytes is a stream's MaxBytes when the user gives none.
const DefaultStreamBytes = 64 << 20

// MinStreamBytes is the smallest MaxBytes a stream may have.
const MinStreamBytes = 1 << 20

// StreamInput creates a stream of the user's.
type StreamInput struct {
	Name     string
	Subjects []string
	// MaxAge drops messages older than it (0: kept until MaxBytes).
	MaxAge time.Duration
	// MaxBytes bounds what the stream holds; its oldest messages go to
	// make room (0: DefaultStreamBytes).
	MaxBytes int64
}

// Stream is a stream of the user's and what it holds.
type Stream struct {
	Name                        string
	Subjects                    []string
	MaxAge                      time.Duration
	MaxBytes                    int64
	Messages, Bytes             uint64
	FirstSequence, LastSequence uint64
	Created                     time.Time
}

// StreamARN is the event source ARN of the stream name.
func StreamARN(name string) string { return StreamARNPrefix + name }

// CreateStream makes a stream of the user's. A name taken already is 409
// ResourceConflictException; a bad name, subject or size, or subjects
// another stream (or the capture stream of a subject mapping) holds, 400
// InvalidParameterValueException.
func (m *Mappings) CreateStream(ctx context.Context, in StreamInput) (Stream, error) {
	if err := checkStreamName(in.Name); err != nil {
		return Stream{}, err
	}
	if up := strings.ToUpper(in.Name); strings.HasPrefix(up, "KV_") || strings.HasPrefix(up, "OBJ_") {
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Stream names starting KV_ or OBJ_ are JetStream's key-value buckets and object stores; choose another than %s.", in.Name)
	}
	if len(in.Subjects) == 0 {
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Subjects is required: the NATS subjects stream %s holds.", in.Name)
	}
	for _, s := range in.Subjects {
		if err := checkSubject(s); err != nil {
			return Stream{}, err
		}
	}
	if in.MaxAge < 0 {
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "MaxAge must be 0 (no limit) or more, not %s.", in.MaxAge)
	}
	if in.MaxBytes == 0 {
		in.MaxBytes = DefaultStreamBytes
	}
	if in.MaxBytes < MinStreamBytes {
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "MaxBytes must be at least %d (1 MiB), not %d.", MinStreamBytes, in.MaxBytes)
	}
	m.streamsMu.Lock() // one creation at a time, so the budget holds
	defer m.streamsMu.Unlock()
	if _, err := m.js.Stream(ctx, in.Name); err == nil {
		return Stream{}, lambdaerr.New(lambdaerr.ResourceConflict, "Stream %s already exists.", in.Name)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return Stream{}, fmt.Errorf("looking up stream %s: %w", in.Name, err)
	}
	all, err := m.ListStreams(ctx)
	if err != nil {
		return Stream{}, err
	}
	var taken int64
	for _, s := range all {
		taken += s.MaxBytes
	}
	if budget := m.opts.StreamBytes; taken+in.MaxBytes > budget {
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"MaxBytes %d is more than your streams may still take: they may hold %d bytes together and %d are given to %d streams; make it smaller or delete a stream.",
			in.MaxBytes, budget, taken, len(all))
	}
	s, err := m.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        in.Name,
		Description: "a stream of the user's, made through Owl",
		Subjects:    in.Subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      in.MaxAge,
		MaxBytes:    in.MaxBytes,
		Storage:     jetstream.FileStorage,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return Stream{}, lambdaerr.New(lambdaerr.ResourceConflict, "Stream %s already exists.", in.Name)
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok && apiErr.Code == 400 {
		// JetStream's own reasons: chiefly subjects that overlap another
		// stream's, the capture stream's among them.
		return Stream{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "Stream %s cannot hold %s: %s (a subject another stream holds, or a subject mapping reads, cannot be a stream's too).",
			in.Name, strings.Join(in.Subjects, ", "), apiErr.Description)
	}
	if err != nil {
		return Stream{}, fmt.Errorf("creating stream %s: %w", in.Name, err)
	}
	m.log.Info("stream created", "stream", in.Name, "subjects", in.Subjects, "max_bytes", in.MaxBytes)
	return streamOf(s.CachedInfo()), nil
}

// GetStream describes a stream of the user's; one that is not there, or
// is Owl's own, is 404 ResourceNotFoundException.
func (m *Mappings) GetStream(ctx context.Context, name string) (Stream, error) {
	s, err := m.userStream(ctx, name)
	if err != nil {
		return Stream{}, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return Stream{}, fmt.Errorf("reading stream %s: %w", name, err)
	}
	return streamOf(info), nil
}

// ListStreams lists the user's streams by name.
func (m *Mappings) ListStreams(ctx context.Context) ([]Stream, error) {
	var out []Stream
	lister := m.js.ListStreams(ctx)
	for info := range lister.Info() {
		if userStream(info.Config.Name) {
			out = append(out, streamOf(info))
		}
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing streams: %w", err)
	}
	slices.SortFunc(out, func(a, b Stream) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteStream deletes a stream of the user's and what it holds. The
// mappings that read it stop, saying so (as they would if it went any
// other way).
func (m *Mappings) DeleteStream(ctx context.Context, name string) error {
	if _, err := m.userStream(ctx, name); err != nil {
		return err
	}
	if err := m.js.DeleteStream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
		return streamNotFound(name)
	} else if err != nil {
		return fmt.Errorf("deleting stream %s: %w", name, err)
	}
	m.log.Info("stream deleted", "stream", name)
	mps, err := m.List(ctx, "", "")
	if err != nil {
		return err
	}
	for _, mp := range mps {
		if mp.Stream == name {
			m.disable(mp.UUID, streamGone(mp))
		}
	}
	return nil
}

// streamGone is the state reason of a mapping whose stream went.
func streamGone(mp Mapping) string {
	return "PROBLEM: Stream not found: " + mp.ARN()
}

func (m *Mappings) userStream(ctx context.Context, name string) (jetstream.Stream, error) {
	if !userStream(name) {
		return nil, streamNotFound(name)
	}
	s, err := m.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrInvalidStreamName) {
		return nil, streamNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("looking up stream %s: %w", name, err)
	}
	return s, nil
}

func streamNotFound(name string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "Stream not found: %s", StreamARN(name))
}

// userStream reports whether the stream name is the user's: not Owl's,
// nor a key-value bucket or object store.
func userStream(name string) bool {
	up := strings.ToUpper(name)
	return checkStreamName(name) == nil && !strings.HasPrefix(up, "KV_") && !strings.HasPrefix(up, "OBJ_")
}

func streamOf(info *jetstream.StreamInfo) Stream {
	return Stream{Name: info.Config.Name, Subjects: info.Config.Subjects, MaxAge: info.Config.MaxAge, MaxBytes: info.Config.MaxBytes,
		Messages: info.State.Msgs, Bytes: info.State.Bytes, FirstSequence: info.State.FirstSeq, LastSequence: info.State.LastSeq,
		Created: info.Created}
}
