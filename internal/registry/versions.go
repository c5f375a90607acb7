package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Keys of the functions bucket. Names, version numbers and alias names
// never contain '.', so each is one subject token:
//
//	fn.<name>              the function's $LATEST (mutable)
//	ver.<name>.<n>         published version n (immutable)
//	alias.<name>.<alias>   an alias
//	pc.<name>.<qualifier>  a provisioned concurrency config
//	eic.<name>.<qualifier> an event (asynchronous) invoke config; $LATEST's
//	                       qualifier token is "=latest" ('$' may not be
//	                       in a key; '=' is in no alias name)
//	url.<name>.<qualifier> a function URL ($LATEST's token "=latest" too)
const (
	versionPrefix     = "ver."
	aliasPrefix       = "alias."
	provisionedPrefix = "pc."
	eventConfigPrefix = "eic."
	urlPrefix         = "url."
)

type keyKind int

const (
	keyFunction keyKind = iota
	keyVersion
	keyAlias
	keyProvisioned
	keyEventConfig
	keyURLConfig
)

type parsedKey struct {
	kind      keyKind
	name      string
	qualifier string // version number or alias name
}

func functionKey(name string) string         { return fnPrefix + name }
func versionKey(name, version string) string { return versionPrefix + name + "." + version }
func aliasKey(name, alias string) string     { return aliasPrefix + name + "." + alias }

func parseKey(key string) (parsedKey, bool) {
	parts := strings.Split(key, ".")
	switch {
	case len(parts) == 2 && parts[0]+"." == fnPrefix:
		return parsedKey{kind: keyFunction, name: parts[1]}, true
	case len(parts) == 3 && parts[0]+"." == versionPrefix:
		return parsedKey{kind: keyVersion, name: parts[1], qualifier: parts[2]}, true
	case len(parts) == 3 && parts[0]+"." == aliasPrefix:
		return parsedKey{kind: keyAlias, name: parts[1], qualifier: parts[2]}, true
	case len(parts) == 3 && parts[0]+"." == provisionedPrefix:
		return parsedKey{kind: keyProvisioned, name: parts[1], qualifier: parts[2]}, true
	case len(parts) == 3 && parts[0]+"." == eventConfigPrefix:
		return parsedKey{kind: keyEventConfig, name: parts[1], qualifier: parts[2]}, true
	case len(parts) == 3 && parts[0]+"." == urlPrefix:
		return parsedKey{kind: keyURLConfig, name: parts[1], qualifier: parts[2]}, true
	}
	return parsedKey{}, false
}

// Limits on aliases (Lambda's).
const (
	MaxAliasNameLen = 128
	// MaxAdditionalVersions is how many versions besides the primary one
	// an alias may route to.
	MaxAdditionalVersions = 1
)

var (
	versionRe   = regexp.MustCompile(`^[0-9]+$`)
	aliasNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// IsVersion reports whether q names a published version (a number).
func IsVersion(q string) bool { return versionRe.MatchString(q) && len(q) < 10 }

// Alias names one version of a function (or $LATEST) and, optionally, a
// second published version that receives a share of the invocations.
type Alias struct {
	Name            string `json:"name"`
	FunctionName    string `json:"function_name"`
	FunctionVersion string `json:"function_version"`
	Description     string `json:"description,omitempty"`
	// AdditionalVersionWeights maps a published version to the share of
	// invocations (0.0–1.0) it receives; the primary version gets the rest.
	AdditionalVersionWeights map[string]float64 `json:"additional_version_weights,omitempty"`
	RevisionID               string             `json:"revision_id"`
}

// Route picks the version an invocation through the alias runs, given a
// uniform random number in [0, 1).
func (a Alias) Route(rnd float64) string {
	for v, w := range a.AdditionalVersionWeights { // at most one entry
		if rnd < w {
			return v
		}
	}
	return a.FunctionVersion
}

// IsInvalidKey reports whether err is the store refusing a key: a name
// from a request that no validation caught.
func IsInvalidKey(err error) bool {
	return errors.Is(err, jetstream.ErrInvalidKey)
}

// ValidateAliasName checks an alias name: Lambda's pattern, and not a
// version number or $LATEST.
func ValidateAliasName(name string) error {
	if name == "" || len(name) > MaxAliasNameLen || !aliasNameRe.MatchString(name) || IsVersion(name) {
		return lambdaerr.ValidationFailed(name, "name",
			"Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)")
	}
	return nil
}

// Target is what a qualifier resolves to: the function configuration of a
// version, and the alias when the qualifier named one.
type Target struct {
	Function
	// Qualifier is the qualifier as given ("" for an unqualified name).
	Qualifier string
	// Alias is set when Qualifier named an alias; Function is then the
	// alias's primary version.
	Alias *Alias
}

// Resolve loads what name:qualifier designates: $LATEST for "" or
// "$LATEST", a published version for a number, else an alias (its primary
// version). Anything unknown is ResourceNotFoundException.
func (r *Registry) Resolve(ctx context.Context, name, qualifier string) (Target, error) {
	t := Target{Qualifier: qualifier}
	var err error
	switch {
	case qualifier == "" || qualifier == Latest:
		t.Function, err = r.Get(ctx, name)
	case IsVersion(qualifier):
		t.Function, err = r.Version(ctx, name, qualifier)
	default:
		var a Alias
		if a, err = r.GetAlias(ctx, name, qualifier); err == nil {
			t.Alias = &a
			t.Function, err = r.versionOrLatest(ctx, name, a.FunctionVersion)
		}
	}
	if err != nil && qualifier != "" && lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		err = r.qualifiedNotFound(name, qualifier)
	}
	return t, err
}

// ResolveForInvoke is Resolve for an invocation: through a weighted alias,
// rnd (uniform in [0, 1)) picks the version that runs.
func (r *Registry) ResolveForInvoke(ctx context.Context, name, qualifier string, rnd float64) (Target, error) {
	if qualifier == "" || qualifier == Latest || IsVersion(qualifier) {
		return r.Resolve(ctx, name, qualifier)
	}
	a, err := r.GetAlias(ctx, name, qualifier)
	if err != nil {
		return r.Resolve(ctx, name, qualifier) // the error as Resolve words it
	}
	f, err := r.versionOrLatest(ctx, name, a.Route(rnd))
	return Target{Function: f, Qualifier: qualifier, Alias: &a}, err
}

func (r *Registry) versionOrLatest(ctx context.Context, name, version string) (Function, error) {
	if version == Latest {
		return r.Get(ctx, name)
	}
	return r.Version(ctx, name, version)
}

func (r *Registry) qualifiedNotFound(name, qualifier string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "Function not found: %s", r.ARN(name, qualifier))
}

// Stale reports whether a configuration is known to be gone: $LATEST of
// another revision, or a deleted function or version. From memory only;
// what it does not know about is not stale.
func (r *Registry) Stale(name, version, revision string) bool {
	key := functionKey(name)
	if version != Latest {
		key = versionKey(name, version)
	}
	if r.cache.deleted(key) || r.cache.deleted(functionKey(name)) {
		return true
	}
	v, ok := r.cache.get(key)
	if !ok {
		return false
	}
	f, _ := v.(Function)
	return f.RevisionID != revision
}

// Version returns published version v of a function.
func (r *Registry) Version(ctx context.Context, name, v string) (Function, error) {
	if !IsVersion(v) {
		return Function{}, r.qualifiedNotFound(name, v)
	}
	key := versionKey(name, v)
	if f, ok := r.cache.get(key); ok {
		return f.(Function), nil
	}
	var f Function
	rev, err := r.read(ctx, key, &f)
	if err != nil {
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			return Function{}, r.qualifiedNotFound(name, v)
		}
		return Function{}, err
	}
	r.cache.put(key, f, rev)
	return f, nil
}

// read decodes the value under key; ResourceNotFound when it is absent.
func (r *Registry) read(ctx context.Context, key string, v any) (uint64, error) {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, lambdaerr.New(lambdaerr.ResourceNotFound, "%s not found", key)
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decoding %s: %w", key, err)
	}
	return e.Revision(), nil
}

// PublishOptions are PublishVersion's preconditions and description.
type PublishOptions struct {
	// CodeSha256Hex, when set, must equal $LATEST's code digest.
	CodeSha256Hex string
	// RevisionID, when set, must equal $LATEST's RevisionId.
	RevisionID  string
	Description string
}

// Publish freezes $LATEST's code and configuration as the next version
// (1, 2, 3, …; numbers are never reused). When nothing changed since the
// newest published version, that version is returned and nothing is
// written.
func (r *Registry) Publish(ctx context.Context, name string, o PublishOptions) (Function, error) {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	return r.publishLocked(ctx, name, o)
}

func (r *Registry) publishLocked(ctx context.Context, name string, o PublishOptions) (Function, error) {
	latest, rev, err := r.get(ctx, name)
	if err != nil {
		return Function{}, err
	}
	if o.RevisionID != "" && o.RevisionID != latest.RevisionID {
		return Function{}, lambdaerr.New(lambdaerr.PreconditionFailed,
			"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	if o.CodeSha256Hex != "" && o.CodeSha256Hex != latest.CodeSha256Hex {
		return Function{}, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"CodeSHA256 (%s) is different from current CodeSHA256 in $LATEST (%s). Please try again with the current CodeSHA256.",
			CodeSha256(o.CodeSha256Hex), CodeSha256(latest.CodeSha256Hex))
	}
	if err := r.writable(); err != nil {
		return Function{}, err
	}
	if err := latest.Runnable(); err != nil {
		return Function{}, err // an image not pulled yet: nothing to freeze
	}
	if latest.LastVersion > 0 {
		prev, err := r.Version(ctx, name, strconv.Itoa(latest.LastVersion))
		switch {
		case err == nil && prev.fingerprint() == latest.fingerprint():
			return prev, nil
		case err != nil && !lambdaerr.Is(err, lambdaerr.ResourceNotFound):
			return Function{}, err
		}
	}
	// Reserve the number with a compare-and-set on $LATEST (its
	// RevisionId stays: its configuration did not change), then write the
	// immutable version.
	n := latest.LastVersion + 1
	latest.LastVersion = n
	newRev, err := r.casFunction(ctx, latest, rev)
	if err != nil {
		return Function{}, err
	}
	r.cache.put(functionKey(name), latest, newRev)

	v := latest
	v.Version = strconv.Itoa(n)
	v.LastVersion, v.ReservedConcurrency = 0, nil
	v.Description = o.Description
	if o.Description == "" {
		v.Description = latest.Description
	}
	v.LastModified = r.opts.Now().UTC()
	v.RevisionID = newRevisionID()
	v.Fingerprint = latest.fingerprint()
	data, err := json.Marshal(v)
	if err != nil {
		return Function{}, fmt.Errorf("encoding version %s:%d: %w", name, n, err)
	}
	vrev, err := r.kv.Create(ctx, versionKey(name, v.Version), data)
	if err != nil {
		return Function{}, fmt.Errorf("storing version %s:%d: %w", name, n, err)
	}
	r.cache.put(versionKey(name, v.Version), v, vrev)
	r.settle(ctx, vrev)
	return v, nil
}

// CodeSha256 is Lambda's form of a stored hex sha256 digest: base64.
func CodeSha256(shaHex string) string {
	sum, _ := hex.DecodeString(shaHex)
	return base64.StdEncoding.EncodeToString(sum)
}

// fingerprint digests what a published version freezes: code and every
// setting that changes what runs (not the description, timestamps or
// revision). Two equal fingerprints mean publishing again changes nothing.
func (f Function) fingerprint() string {
	if f.Version != Latest && f.Fingerprint != "" {
		return f.Fingerprint
	}
	g := f
	g.Version, g.LastVersion, g.Fingerprint, g.ReservedConcurrency = "", 0, "", nil
	g.Description, g.Tags = "", nil
	g.LastModified, g.RevisionID = time.Time{}, ""
	b, _ := json.Marshal(g)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// casFunction writes $LATEST if it is still at KV revision rev.
func (r *Registry) casFunction(ctx context.Context, f Function, rev uint64) (uint64, error) {
	data, err := json.Marshal(f)
	if err != nil {
		return 0, fmt.Errorf("encoding function %s: %w", f.Name, err)
	}
	newRev, err := r.kv.Update(ctx, functionKey(f.Name), data, rev)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return 0, r.notFound(f.Name)
		}
		if conflict(err) {
			return 0, r.updateInProgress(r.ARN(f.Name, ""))
		}
		return 0, fmt.Errorf("updating function %s: %w", f.Name, err)
	}
	return newRev, nil
}

// conflict reports whether a compare-and-set write failed because the
// key moved on since it was read (another writer got there first).
func conflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// updateInProgress is Lambda's answer to a write that lost a race with
// another write of arn.
func (r *Registry) updateInProgress(arn string) error {
	return lambdaerr.New(lambdaerr.ResourceConflict,
		"The operation cannot be performed at this time. An update is in progress for resource: %s", arn)
}

// ListVersions returns $LATEST followed by the published versions in
// ascending order.
func (r *Registry) ListVersions(ctx context.Context, name string) ([]Function, error) {
	latest, err := r.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	nums, err := r.versionNumbers(ctx, name)
	if err != nil {
		return nil, err
	}
	return appendExisting([]Function{latest}, nums, func(n int) (Function, error) { return r.Version(ctx, name, strconv.Itoa(n)) })
}

func (r *Registry) versionNumbers(ctx context.Context, name string) ([]int, error) {
	keys, err := r.keys(ctx, versionPrefix+name+".*")
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, k := range keys {
		if pk, ok := parseKey(k); ok {
			if n, err := strconv.Atoi(pk.qualifier); err == nil {
				nums = append(nums, n)
			}
		}
	}
	sort.Ints(nums)
	return nums, nil
}

// keys lists the bucket's keys matching a subject filter.
func (r *Registry) keys(ctx context.Context, filter string) ([]string, error) {
	lister, err := r.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", filter, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil // the lister stops itself when its channel closes
}

// DeleteVersion deletes one published version, refusing while an alias
// routes to it.
func (r *Registry) DeleteVersion(ctx context.Context, name, version string) error {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	v, err := r.Version(ctx, name, version)
	if err != nil {
		return err
	}
	aliases, err := r.ListAliases(ctx, name)
	if err != nil {
		return err
	}
	var users []string
	for _, a := range aliases {
		if a.FunctionVersion == version {
			users = append(users, a.Name)
			continue
		}
		if _, ok := a.AdditionalVersionWeights[version]; ok {
			users = append(users, a.Name)
		}
	}
	if len(users) > 0 {
		return lambdaerr.New(lambdaerr.ResourceConflict,
			"Unable to delete version because the following aliases reference it: [%s]", strings.Join(users, ", "))
	}
	if _, ok := r.provisioned(name, version); ok {
		return lambdaerr.New(lambdaerr.ResourceConflict,
			"Unable to delete version %s because it has a provisioned concurrency config; delete that first.", version)
	}
	// Its event invoke config goes with it, as on Lambda.
	if err := r.deleteConfigsOf(ctx, name, version); err != nil {
		return err
	}
	if err := r.deleteKey(ctx, versionKey(name, version)); err != nil {
		return err
	}
	r.collectCode(ctx, v.CodeSha256Hex)
	r.settle(ctx, 0)
	return nil
}

// deleteKey deletes one key and leaves a tombstone in the cache.
func (r *Registry) deleteKey(ctx context.Context, key string) error {
	e, err := r.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", key, err)
	}
	if err := r.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	r.cache.remove(key, e.Revision()+1)
	return nil
}

// AliasInput is what CreateAlias and UpdateAlias set.
type AliasInput struct {
	FunctionVersion *string
	Description     *string
	// AdditionalVersionWeights replaces the routing when not nil (an empty
	// map removes it).
	AdditionalVersionWeights map[string]float64
	// RevisionID, when set on update, must equal the alias's RevisionId.
	RevisionID string
}

// CreateAlias creates alias aliasName of function name.
func (r *Registry) CreateAlias(ctx context.Context, name, aliasName string, in AliasInput) (Alias, error) {
	if err := ValidateAliasName(aliasName); err != nil {
		return Alias{}, err
	}
	if in.FunctionVersion == nil {
		return Alias{}, lambdaerr.New(lambdaerr.InvalidParameterValue, "FunctionVersion is required.")
	}
	if _, err := r.Get(ctx, name); err != nil {
		return Alias{}, err
	}
	if err := r.writable(); err != nil {
		return Alias{}, err
	}
	a := Alias{Name: aliasName, FunctionName: name}
	data, err := r.changeAlias(ctx, &a, in)
	if err != nil {
		return Alias{}, err
	}
	rev, err := r.kv.Create(ctx, aliasKey(name, aliasName), data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Alias{}, lambdaerr.New(lambdaerr.ResourceConflict, "Alias already exists: %s", r.ARN(name, aliasName))
	}
	if err != nil {
		return Alias{}, fmt.Errorf("storing alias %s:%s: %w", name, aliasName, err)
	}
	r.cache.put(aliasKey(name, aliasName), a, rev)
	return a, nil
}

// changeAlias applies in to a, gives it a new RevisionID and encodes it
// for the store.
func (r *Registry) changeAlias(ctx context.Context, a *Alias, in AliasInput) ([]byte, error) {
	if err := r.applyAlias(ctx, a, in); err != nil {
		return nil, err
	}
	a.RevisionID = newRevisionID()
	data, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encoding alias %s:%s: %w", a.FunctionName, a.Name, err)
	}
	return data, nil
}

// UpdateAlias changes an alias; a concurrent update gets
// ResourceConflictException, a stale RevisionID PreconditionFailed.
func (r *Registry) UpdateAlias(ctx context.Context, name, aliasName string, in AliasInput) (Alias, error) {
	if err := ValidateAliasName(aliasName); err != nil {
		return Alias{}, err
	}
	var a Alias
	rev, err := r.read(ctx, aliasKey(name, aliasName), &a)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return Alias{}, r.aliasNotFound(name, aliasName)
	}
	if err != nil {
		return Alias{}, err
	}
	if in.RevisionID != "" && in.RevisionID != a.RevisionID {
		return Alias{}, lambdaerr.New(lambdaerr.PreconditionFailed,
			"The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id")
	}
	if err := r.writable(); err != nil {
		return Alias{}, err
	}
	data, err := r.changeAlias(ctx, &a, in)
	if err != nil {
		return Alias{}, err
	}
	newRev, err := r.kv.Update(ctx, aliasKey(name, aliasName), data, rev)
	if err != nil {
		if conflict(err) {
			return Alias{}, r.updateInProgress(r.ARN(name, aliasName))
		}
		return Alias{}, fmt.Errorf("updating alias %s:%s: %w", name, aliasName, err)
	}
	r.cache.put(aliasKey(name, aliasName), a, newRev)
	return a, nil
}

// applyAlias validates in against the function's versions and applies it.
func (r *Registry) applyAlias(ctx context.Context, a *Alias, in AliasInput) error {
	if in.FunctionVersion != nil {
		v := *in.FunctionVersion
		if v != Latest && !IsVersion(v) {
			return lambdaerr.ValidationFailed(v, "functionVersion", `Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)`)
		}
		if _, err := r.versionOrLatest(ctx, a.FunctionName, v); err != nil {
			if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
				return r.qualifiedNotFound(a.FunctionName, v)
			}
			return err
		}
		a.FunctionVersion = v
	}
	if in.Description != nil {
		if len([]rune(*in.Description)) > MaxDescriptionLen {
			return lambdaerr.ValidationFailed(*in.Description, "description", "Member must have length less than or equal to 256")
		}
		a.Description = *in.Description
	}
	if in.AdditionalVersionWeights != nil {
		a.AdditionalVersionWeights = nil
		if len(in.AdditionalVersionWeights) > MaxAdditionalVersions {
			return lambdaerr.New(lambdaerr.InvalidParameterValue,
				"Number of items in AdditionalVersionWeights cannot be greater than %d", MaxAdditionalVersions)
		}
		for v, w := range in.AdditionalVersionWeights {
			if !IsVersion(v) {
				return lambdaerr.ValidationFailed(v, "routingConfig.additionalVersionWeights.key",
					"Member must satisfy regular expression pattern: [0-9]+")
			}
			if w < 0 || w > 1 || w != w {
				return lambdaerr.ValidationFailed(strconv.FormatFloat(w, 'g', -1, 64),
					"routingConfig.additionalVersionWeights.value", "Member must have value between 0.0 and 1.0")
			}
			if _, err := r.Version(ctx, a.FunctionName, v); err != nil {
				return err
			}
			if a.AdditionalVersionWeights == nil {
				a.AdditionalVersionWeights = map[string]float64{}
			}
			a.AdditionalVersionWeights[v] = w
		}
	}
	for v := range a.AdditionalVersionWeights {
		if a.FunctionVersion == Latest {
			return lambdaerr.New(lambdaerr.InvalidParameterValue,
				"$LATEST is not supported for an alias pointing to more than 1 version")
		}
		if v == a.FunctionVersion {
			return lambdaerr.New(lambdaerr.InvalidParameterValue,
				"Invalid function version %s. Function version %s is already included in the routing configuration.", v, v)
		}
	}
	return nil
}

func (r *Registry) aliasNotFound(name, aliasName string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "Cannot find alias arn: %s", r.ARN(name, aliasName))
}

// GetAlias returns one alias.
func (r *Registry) GetAlias(ctx context.Context, name, aliasName string) (Alias, error) {
	key := aliasKey(name, aliasName)
	if ValidateAliasName(aliasName) != nil {
		return Alias{}, r.qualifiedNotFound(name, aliasName)
	}
	if a, ok := r.cache.get(key); ok {
		return a.(Alias), nil
	}
	var a Alias
	rev, err := r.read(ctx, key, &a)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		if _, ferr := r.Get(ctx, name); ferr != nil {
			return Alias{}, ferr
		}
		return Alias{}, r.aliasNotFound(name, aliasName)
	}
	if err != nil {
		return Alias{}, err
	}
	r.cache.put(key, a, rev)
	return a, nil
}

// ListAliases returns a function's aliases sorted by name.
func (r *Registry) ListAliases(ctx context.Context, name string) ([]Alias, error) {
	if _, err := r.Get(ctx, name); err != nil {
		return nil, err
	}
	keys, err := r.keys(ctx, aliasPrefix+name+".*")
	if err != nil {
		return nil, err
	}
	sort.Strings(keys)
	return appendExisting(make([]Alias, 0, len(keys)), keys, func(k string) (Alias, error) {
		pk, _ := parseKey(k)
		return r.GetAlias(ctx, name, pk.qualifier)
	})
}

// DeleteAlias deletes an alias; deleting a missing one is not an error
// (as on Lambda).
func (r *Registry) DeleteAlias(ctx context.Context, name, aliasName string) error {
	if err := ValidateAliasName(aliasName); err != nil {
		return err
	}
	if _, err := r.Get(ctx, name); err != nil {
		return err
	}
	// An alias's provisioned concurrency and event invoke configs go with it, as on Lambda.
	if err := r.deleteConfigsOf(ctx, name, aliasName); err != nil {
		return err
	}
	return r.deleteKey(ctx, aliasKey(name, aliasName))
}
