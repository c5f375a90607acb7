// Package registry owns Owl's function definitions and their code: each
// function's configuration lives in a NATS KV bucket (revisioned, so updates
// are optimistic and RevisionId checks are exact) and code zips live in the
// NATS Object Store, content-addressed by sha256.
package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
)

const (
	functionsBucket = "owl_functions"
	codeBucket      = "owl_code"
	fnPrefix        = "fn."
)

// Options configures a Registry.
type Options struct {
	Region, AccountID string
	// CodeStorageLimit is the installation's quota of stored code bytes.
	CodeStorageLimit int64
	Logger           *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Space, when set, is asked before every write that needs disk space:
	// code uploads must fit above its reserve, other writes are refused
	// while the disk is below it. Deletions are never refused.
	Space SpaceChecker
}

// SpaceChecker is the data dir's free-space guard (internal/diskspace).
type SpaceChecker interface {
	// Check returns an error (a *diskspace.LowSpaceError) when writing
	// need bytes would leave less than the reserve free.
	Check(need int64) error
}

// Registry stores functions and code in JetStream.
type Registry struct {
	opts   Options
	kv     jetstream.KeyValue
	layers jetstream.KeyValue
	code   jetstream.ObjectStore
	// codeStream is the object store's stream, for purges by subject.
	codeStream jetstream.Stream
	// cache mirrors the bucket, fed by this node's writes and a watcher
	// that sees every node's.
	cache     *fnCache
	stopWatch context.CancelFunc
	watchDone chan struct{}
	// seen is the KV revision up to which the watcher has applied the
	// bucket's entries and told the subscribers; advanced is closed (and
	// replaced) whenever it moves (settle waits on it).
	seenMu   sync.Mutex
	seen     uint64        // guarded by seenMu
	advanced chan struct{} // guarded by seenMu

	changed subscribers[Change] // OnChange

	// codeMu serialises the writes that store or collect code (Create,
	// Update, Delete). Two Puts of the same content-addressed object would
	// purge each other's chunks under a concurrent reader, and collecting
	// an object must not race a function starting to reference it. This
	// holds within one node; a cluster needs a lock in NATS.
	codeMu sync.Mutex

	collected subscribers[string] // OnCodeCollected: a code object's sha256, hex

	// codeUsed is the total size of the stored code objects, kept in
	// memory (set at Open and by every collection, moved by this node's
	// uploads and deletions under codeMu). Summing the object store's
	// metadata instead reads a message from every block file that holds
	// one, and each read keeps its whole block (up to 8 MB) cached: with
	// the metadata spread over every block, each upload had the store
	// load all of them.
	codeUsed atomic.Int64
}

// Open creates (or opens) the buckets.
func Open(ctx context.Context, js jetstream.JetStream, opts Options) (*Registry, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: functionsBucket, Description: "Owl function configurations", History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", functionsBucket, err)
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: codeBucket, Description: "Owl function code zips by sha256", Compression: false,
	})
	if err != nil {
		return nil, fmt.Errorf("opening object store %s: %w", codeBucket, err)
	}
	layers, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: layersBucket, Description: "Owl layer versions", History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("opening KV bucket %s: %w", layersBucket, err)
	}
	codeStr, err := js.Stream(ctx, codeStream)
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", codeStream, err)
	}
	r := &Registry{opts: opts, kv: kv, layers: layers, code: obs, codeStream: codeStr, cache: newFnCache()}
	used, err := r.sumCode(ctx)
	if err != nil {
		return nil, err
	}
	r.codeUsed.Store(used)
	if err := r.startCacheWatch(); err != nil {
		return nil, err
	}
	return r, nil
}

// ARN returns the ARN of a function of this installation.
func (r *Registry) ARN(name, qualifier string) string {
	return ARN(r.opts.Region, r.opts.AccountID, name, qualifier)
}

func (r *Registry) notFound(name string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "Function not found: %s", r.ARN(name, ""))
}

// Get returns a function's $LATEST configuration.
// It is served from the in-memory cache when possible (every invocation
// resolves its function), else read from the bucket.
func (r *Registry) Get(ctx context.Context, name string) (Function, error) {
	if f, ok := r.cache.get(functionKey(name)); ok {
		return f.(Function), nil
	}
	f, rev, err := r.get(ctx, name)
	if err == nil {
		r.cache.put(functionKey(name), f, rev)
	}
	return f, err
}

func (r *Registry) get(ctx context.Context, name string) (Function, uint64, error) {
	var f Function
	rev, err := r.read(ctx, functionKey(name), &f)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return Function{}, 0, r.notFound(name)
	}
	return f, rev, err
}

// List returns every function's $LATEST, sorted by name.
func (r *Registry) List(ctx context.Context) ([]Function, error) {
	keys, err := r.keys(ctx, fnPrefix+"*")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k[len(fnPrefix):])
	}
	sort.Strings(names)
	return appendExisting(make([]Function, 0, len(names)), names, func(n string) (Function, error) { return r.Get(ctx, n) })
}

// appendExisting appends to out what get returns for each of keys, in
// order, leaving out the keys whose item was deleted since they were
// listed (get answers ResourceNotFound).
func appendExisting[K, T any](out []T, keys []K, get func(K) (T, error)) ([]T, error) {
	for _, k := range keys {
		v, err := get(k)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Create stores a new function with its (already validated) code zip;
// an image function (f.Image) has none.
func (r *Registry) Create(ctx context.Context, f Function, zip *Zip) (Function, error) {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	if err := f.Validate(); err != nil {
		return Function{}, err
	}
	if _, _, err := r.get(ctx, f.Name); err == nil {
		return Function{}, lambdaerr.New(lambdaerr.ResourceConflict, "Function already exist: %s", f.Name)
	}
	if err := r.writable(); err != nil {
		return Function{}, err
	}
	if zip != nil { // an image function's code is its image
		if err := r.putCode(ctx, &f, zip); err != nil {
			return Function{}, err
		}
	}
	f.Version = Latest
	f.LastModified = r.opts.Now().UTC()
	f.RevisionID = newRevisionID()
	data, err := json.Marshal(f)
	if err != nil {
		return Function{}, fmt.Errorf("encoding function %s: %w", f.Name, err)
	}
	newRev, err := r.kv.Create(ctx, fnPrefix+f.Name, data)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return Function{}, lambdaerr.New(lambdaerr.ResourceConflict, "Function already exist: %s", f.Name)
		}
		return Function{}, fmt.Errorf("storing function %s: %w", f.Name, err)
	}
	r.cache.put(functionKey(f.Name), f, newRev)
	r.settle(ctx, newRev)
	return f, nil
}

// Update applies change to the function's $LATEST configuration. When
// revisionID is not empty it must match the stored RevisionId. zip, when
// not nil, replaces the code. The write is a compare-and-set on the KV
// revision: a concurrent update gets ResourceConflictException.
func (r *Registry) Update(ctx context.Context, name, revisionID string, zip *Zip, change func(*Function)) (Function, error) {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	f, rev, err := r.get(ctx, name)
	if err != nil {
		return Function{}, err
	}
	if revisionID != "" && revisionID != f.RevisionID {
		return Function{}, lambdaerr.New(lambdaerr.PreconditionFailed,
			"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	if err := r.writable(); err != nil {
		return Function{}, err
	}
	oldSha := f.CodeSha256Hex
	if change != nil {
		change(&f)
	}
	if err := f.Validate(); err != nil {
		return Function{}, err
	}
	if zip != nil {
		if err := r.putCode(ctx, &f, zip); err != nil {
			return Function{}, err
		}
	}
	f.LastModified = r.opts.Now().UTC()
	f.RevisionID = newRevisionID()
	data, err := json.Marshal(f)
	if err != nil {
		return Function{}, fmt.Errorf("encoding function %s: %w", name, err)
	}
	newRev, err := r.kv.Update(ctx, fnPrefix+name, data, rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return Function{}, r.notFound(name)
		}
		if conflict(err) {
			return Function{}, r.updateInProgress(r.ARN(name, ""))
		}
		return Function{}, fmt.Errorf("updating function %s: %w", name, err)
	}
	r.cache.put(functionKey(name), f, newRev)
	if zip != nil && oldSha != f.CodeSha256Hex {
		r.collectCode(ctx, oldSha)
	}
	r.settle(ctx, newRev)
	return f, nil
}

// Delete removes a function with all its versions and aliases and, when
// nothing else uses it, their code. Aliases and versions go first, so
// that a failure half-way leaves a function that can be deleted again.
func (r *Registry) Delete(ctx context.Context, name string) error {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	f, rev, err := r.get(ctx, name)
	if err != nil {
		return err
	}
	if err := r.deleteConfigsOf(ctx, name, ""); err != nil {
		return err
	}
	aliasKeys, err := r.keys(ctx, aliasPrefix+name+".*")
	if err != nil {
		return err
	}
	for _, k := range aliasKeys {
		if err := r.deleteKey(ctx, k); err != nil {
			return err
		}
	}
	nums, err := r.versionNumbers(ctx, name)
	if err != nil {
		return err
	}
	shas := map[string]bool{f.CodeSha256Hex: true}
	for _, n := range nums {
		v, err := r.Version(ctx, name, strconv.Itoa(n))
		if err == nil {
			shas[v.CodeSha256Hex] = true
		}
		if err := r.deleteKey(ctx, versionKey(name, strconv.Itoa(n))); err != nil {
			return err
		}
	}
	if err := r.kv.Delete(ctx, functionKey(name), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("deleting function %s: %w", name, err)
	}
	// The delete's own revision is not returned; it is at least rev+1.
	r.cache.remove(functionKey(name), rev+1)
	for sha := range shas {
		r.collectCode(ctx, sha)
	}
	r.settle(ctx, 0)
	return nil
}

// Code returns the zip with the given hex sha256.
//
// In a cluster, a replica that has not applied the code's write yet (reads
// may be served by any) answers "not found" while the function that
// names the code is already known: it is asked again for up to 5 s.
func (r *Registry) Code(ctx context.Context, shaHex string) ([]byte, error) {
	b, err := r.code.GetBytes(ctx, shaHex)
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, jetstream.ErrObjectNotFound) && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
		b, err = r.code.GetBytes(ctx, shaHex)
	}
	if err != nil {
		return nil, fmt.Errorf("reading code %s: %w", shaHex, err)
	}
	return b, nil
}

// CodeStorageUsed is the total size of stored code zips.
func (r *Registry) CodeStorageUsed(ctx context.Context) (int64, error) {
	return r.codeUsed.Load(), nil
}

// sumCode adds up the stored objects' sizes from their metadata.
func (r *Registry) sumCode(ctx context.Context) (int64, error) {
	infos, err := r.code.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing code: %w", err)
	}
	var total int64
	for _, in := range infos {
		total += int64(in.Size)
	}
	return total, nil
}

// Zip is a code zip to store: its SHA-256 and size, known before it is
// stored (the API learns them inspecting it), and its bytes, read only
// when no identical code is stored yet. The registry trusts Sha256 to be
// Data's: it names the stored object.
type Zip struct {
	Sha256 [sha256.Size]byte
	Size   int64
	// Data holds the zip's Size bytes: in memory, or a file for a zip
	// that was streamed to disk rather than held.
	Data io.ReaderAt
}

// ZipBytes is a Zip of b.
func ZipBytes(b []byte) *Zip {
	return &Zip{Sha256: sha256.Sum256(b), Size: int64(len(b)), Data: bytes.NewReader(b)}
}

// putCode stores zip (unless identical code is stored) and records its
// digest and size in f, enforcing the installation's storage quota.
func (r *Registry) putCode(ctx context.Context, f *Function, zip *Zip) error {
	shaHex := hex.EncodeToString(zip.Sha256[:])
	f.CodeSha256Hex, f.CodeSize = shaHex, zip.Size
	if _, err := r.code.GetInfo(ctx, shaHex); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("looking up code %s: %w", shaHex, err)
	}
	used, err := r.CodeStorageUsed(ctx)
	if err != nil {
		return err
	}
	if used+zip.Size > r.opts.CodeStorageLimit {
		return lambdaerr.New(lambdaerr.CodeStorageExceeded,
			"Code storage limit exceeded. The installation stores %d of %d bytes; this package needs %d more.",
			used, r.opts.CodeStorageLimit, zip.Size)
	}
	if err := r.roomForCode(zip.Size); err != nil {
		return err
	}
	if _, err := r.code.Put(ctx, jetstream.ObjectMeta{Name: shaHex}, io.NewSectionReader(zip.Data, 0, zip.Size)); err != nil {
		return fmt.Errorf("storing code %s: %w", shaHex, err)
	}
	r.codeUsed.Add(zip.Size)
	return nil
}

// collectCode deletes a code object no function version or layer
// references any more, right after the write that dropped the reference.
// Failure only delays reclaiming it: it is logged, and the periodic
// collection (Collect) retries.
func (r *Registry) collectCode(ctx context.Context, shaHex string) {
	refs, err := r.referencedCode(ctx)
	if err != nil {
		r.opts.Logger.Warn("code GC: finding referenced code; the next collection retries", "err", err)
		return
	}
	if refs[shaHex] {
		return
	}
	info, err := r.code.GetInfo(ctx, shaHex)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return
	}
	if err == nil {
		err = r.deleteCode(ctx, shaHex, info.NUID)
	}
	if err == nil {
		r.codeUsed.Add(-int64(info.Size))
	}
	if err != nil {
		r.opts.Logger.Warn("code GC: deleting; the next collection retries", "sha256", shaHex, "err", err)
	}
}

// allRunnable returns every $LATEST and every published version.
func (r *Registry) allRunnable(ctx context.Context) ([]Function, error) {
	fns, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := r.keys(ctx, versionPrefix+"*.*")
	if err != nil {
		return nil, err
	}
	return appendExisting(fns, keys, func(k string) (Function, error) {
		pk, _ := parseKey(k)
		return r.Version(ctx, pk.name, pk.qualifier)
	})
}

func newRevisionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// subscribers is a list of callbacks that may grow while it is called.
type subscribers[T any] struct {
	mu  sync.Mutex
	fns []func(T) // guarded by mu
}

func (s *subscribers[T]) add(fn func(T)) {
	s.mu.Lock()
	s.fns = append(s.fns, fn)
	s.mu.Unlock()
}

// call calls each callback with v, outside the lock.
func (s *subscribers[T]) call(v T) {
	s.mu.Lock()
	fns := s.fns
	s.mu.Unlock()
	for _, fn := range fns {
		fn(v)
	}
}
