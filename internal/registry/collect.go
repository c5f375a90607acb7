package registry

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/diskspace"
	"github.com/owl-project/owl/internal/lambdaerr"
)

// The object store's subjects (nats.go's layout): the chunks of an object
// under $O.<bucket>.C.<nuid>, its metadata under $O.<bucket>.M.<base64url name>.
const (
	codeStream    = "OBJ_" + codeBucket
	codeChunksPfx = "$O." + codeBucket + ".C."
	codeMetaPfx   = "$O." + codeBucket + ".M."
	// markerAge is how old a KV delete marker must be before a
	// collection removes it (a marker briefly keeps a watcher that lags
	// from resurrecting the key).
	markerAge = time.Minute
)

// CollectReport says what one collection found and removed.
type CollectReport struct {
	// Objects and ObjectBytes are the live code objects after collection.
	Objects     int
	ObjectBytes int64
	// DeletedObjects and DeletedBytes are unreferenced objects removed.
	DeletedObjects int
	DeletedBytes   int64
	// OrphanChunks counts chunk messages of objects that were never
	// completed (a crash or a full disk during an upload), removed.
	OrphanChunks uint64
	// DeletedMetas counts metadata of deleted objects removed.
	DeletedMetas int
}

// OnCodeCollected calls fn with the sha256 of every code object the
// registry deletes because nothing references it any more; the worker
// drops its unpacked copy.
func (r *Registry) OnCodeCollected(fn func(shaHex string)) { r.collected.add(fn) }

// Collect removes from the store everything no function, version or
// layer references: unreferenced code objects, the chunks of uploads that
// never completed, the metadata of deleted objects and old delete markers
// of the KV buckets. It holds the code lock, so no upload is half-way
// while it looks. A failure leaves the rest for the next collection.
func (r *Registry) Collect(ctx context.Context) (CollectReport, error) {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	var rep CollectReport
	refs, err := r.referencedCode(ctx)
	if err != nil {
		return rep, err
	}
	infos, err := r.code.List(ctx, jetstream.ListObjectsShowDeleted())
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return rep, fmt.Errorf("listing code: %w", err)
	}
	var errs []error
	liveNUIDs := map[string]bool{}
	var kept int64 // bytes of unreferenced objects whose deletion failed
	for _, in := range infos {
		switch {
		case in.Deleted:
			// Deleted by an older Owl (a marker kept forever) or half-way.
			if err := r.purgeSubject(ctx, codeMetaPfx+base64.URLEncoding.EncodeToString([]byte(in.Name))); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.DeletedMetas++
		case refs[in.Name]:
			liveNUIDs[in.NUID] = true
			rep.Objects++
			rep.ObjectBytes += int64(in.Size)
		default:
			if err := r.deleteCode(ctx, in.Name, in.NUID); err != nil {
				errs = append(errs, err)
				liveNUIDs[in.NUID] = true // not now: its chunks stay
				kept += int64(in.Size)
				continue
			}
			rep.DeletedObjects++
			rep.DeletedBytes += int64(in.Size)
		}
	}
	r.codeUsed.Store(rep.ObjectBytes + kept)
	// Chunks whose object has no metadata: an upload that never finished.
	n, err := r.purgeOrphanChunks(ctx, liveNUIDs)
	rep.OrphanChunks = n
	if err != nil {
		errs = append(errs, err)
	}
	for _, kv := range []jetstream.KeyValue{r.kv, r.layers} {
		if err := kv.PurgeDeletes(ctx, jetstream.DeleteMarkersOlderThan(markerAge)); err != nil {
			errs = append(errs, fmt.Errorf("purging delete markers of %s: %w", kv.Bucket(), err))
		}
	}
	return rep, errors.Join(errs...)
}

// referencedCode is the set of code objects some $LATEST, published
// version (with its layers) or layer version uses.
func (r *Registry) referencedCode(ctx context.Context) (map[string]bool, error) {
	fns, err := r.allRunnable(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing functions: %w", err)
	}
	refs := map[string]bool{}
	for _, f := range fns {
		refs[f.CodeSha256Hex] = true
		for _, l := range f.Layers {
			refs[l.CodeSha256Hex] = true // a function keeps a layer version deleted since
		}
	}
	layers, err := r.allLayers(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	for _, l := range layers {
		refs[l.CodeSha256Hex] = true
	}
	return refs, nil
}

// deleteCode removes one object: its metadata first (readers stop finding
// it at once), then its chunks. Unlike the object store's Delete, it
// leaves no "deleted" metadata behind and writes no new message, so it
// works on a disk below the reserve; a crash between the two leaves
// chunks without metadata, which the next collection removes.
func (r *Registry) deleteCode(ctx context.Context, shaHex, nuid string) error {
	if err := r.purgeSubject(ctx, codeMetaPfx+base64.URLEncoding.EncodeToString([]byte(shaHex))); err != nil {
		return fmt.Errorf("deleting code %s: %w", shaHex, err)
	}
	if err := r.purgeSubject(ctx, codeChunksPfx+nuid); err != nil {
		return fmt.Errorf("deleting code %s's chunks: %w", shaHex, err)
	}
	r.collected.call(shaHex)
	return nil
}

func (r *Registry) purgeSubject(ctx context.Context, subject string) error {
	if err := r.codeStream.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
		return fmt.Errorf("purging %s: %w", subject, err)
	}
	return nil
}

// purgeOrphanChunks removes chunk subjects of objects not in live; codeMu
// held (no upload is writing chunks).
func (r *Registry) purgeOrphanChunks(ctx context.Context, live map[string]bool) (uint64, error) {
	info, err := r.codeStream.Info(ctx, jetstream.WithSubjectFilter(codeChunksPfx+">"))
	if err != nil {
		return 0, fmt.Errorf("listing code chunks: %w", err)
	}
	var n uint64
	var errs []error
	for subj, count := range info.State.Subjects {
		if live[strings.TrimPrefix(subj, codeChunksPfx)] {
			continue
		}
		if err := r.purgeSubject(ctx, subj); err != nil {
			errs = append(errs, err)
			continue
		}
		n += count
	}
	return n, errors.Join(errs...)
}

// writable refuses a write while the data dir is below its disk reserve.
func (r *Registry) writable() error {
	if r.opts.Space == nil {
		return nil
	}
	if err := r.opts.Space.Check(0); err != nil {
		return storageFull(err)
	}
	return nil
}

// roomForCode refuses a code upload that would not fit above the reserve,
// as Lambda refuses one past the account's code storage.
func (r *Registry) roomForCode(size int64) error {
	if r.opts.Space == nil {
		return nil
	}
	// Chunk headers and the metadata add well under 1 %.
	if err := r.opts.Space.Check(size + size/64 + 64<<10); err != nil {
		return noRoomForCode(err)
	}
	return nil
}

// UploadSpaceError is the answer to a code upload that the disk guard
// refused before it reached the registry (err from diskspace: the API
// spools large uploads to the data dir): what writable or roomForCode
// would have answered, ServiceUnavailable below the reserve, else
// CodeStorageExceeded.
func UploadSpaceError(err error) error {
	var le *diskspace.LowSpaceError
	if errors.As(err, &le) && le.Free < le.Reserve {
		return storageFull(err)
	}
	return noRoomForCode(err)
}

func storageFull(err error) error {
	if !diskspace.IsLow(err) {
		return fmt.Errorf("checking free disk space: %w", err)
	}
	return &lambdaerr.Error{Code: lambdaerr.ServiceUnavailable, RetryAfter: 30, Err: err,
		Message: "Owl's storage is full: " + err.Error() + ". Delete functions, versions or layers, or free disk space, then retry."}
}

func noRoomForCode(err error) error {
	if !diskspace.IsLow(err) {
		return fmt.Errorf("checking free disk space: %w", err)
	}
	return lambdaerr.Wrap(lambdaerr.CodeStorageExceeded, err,
		"Code storage exceeded: not enough disk space for this package: %s. Delete unused functions, versions or layers, or free disk space.", err.Error())
}

// FunctionNames is the set of every function's name (for collecting the
// logs of deleted functions).
func (r *Registry) FunctionNames(ctx context.Context) (map[string]bool, error) {
	keys, err := r.keys(ctx, fnPrefix+"*")
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(keys))
	for _, k := range keys {
		names[strings.TrimPrefix(k, fnPrefix)] = true
	}
	return names, nil
}
