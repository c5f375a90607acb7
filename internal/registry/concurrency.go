package registry

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Reserved returns a function's reserved concurrency, from memory (it is
// consulted on every invocation).
func (r *Registry) Reserved(name string) (int, bool) {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	n, ok := r.cache.reserved[name]
	return n, ok
}

// ReservedTotal is the sum of every function's reserved concurrency.
func (r *Registry) ReservedTotal() int {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	return r.cache.reservedTotal
}

// PutReservedConcurrency reserves n concurrent executions for a function
// (0 throttles every invocation). Every function's reservations together
// may not exceed maxTotal (the account limit less the unreserved minimum).
// $LATEST's RevisionId does not change: what runs is the same.
func (r *Registry) PutReservedConcurrency(ctx context.Context, name string, n, maxTotal int) (int, error) {
	if err := lambdaerr.IntRange(n, "reservedConcurrentExecutions", 0, math.MaxInt32); err != nil {
		return 0, err
	}
	if err := r.writable(); err != nil {
		return 0, err
	}
	return n, r.changeLatest(ctx, name, func(f *Function) error {
		others := r.ReservedTotal()
		if f.ReservedConcurrency != nil {
			others -= *f.ReservedConcurrency
		}
		if others+n > maxTotal {
			return lambdaerr.New(lambdaerr.InvalidParameterValue,
				"Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].",
				100)
		}
		if sum := r.provisionedSum(name); n < sum {
			return lambdaerr.New(lambdaerr.InvalidParameterValue,
				"Specified ReservedConcurrentExecutions %d is less than the function's provisioned concurrency (%d).", n, sum)
		}
		f.ReservedConcurrency = &n
		return nil
	})
}

// DeleteReservedConcurrency removes a function's reservation.
func (r *Registry) DeleteReservedConcurrency(ctx context.Context, name string) error {
	return r.changeLatest(ctx, name, func(f *Function) error {
		f.ReservedConcurrency = nil
		return nil
	})
}

// changeLatest applies change to $LATEST with a compare-and-set that keeps
// its RevisionId (for settings that do not change what runs).
func (r *Registry) changeLatest(ctx context.Context, name string, change func(*Function) error) error {
	r.codeMu.Lock()
	defer r.codeMu.Unlock()
	f, rev, err := r.get(ctx, name)
	if err != nil {
		return err
	}
	if err := change(&f); err != nil {
		return err
	}
	newRev, err := r.casFunction(ctx, f, rev)
	if err != nil {
		return err
	}
	r.cache.put(functionKey(name), f, newRev)
	r.settle(ctx, newRev)
	return nil
}

// ProvisionedConfig keeps Requested environments of a published version
// (or of the versions an alias routes to) initialised ahead of invocations.
type ProvisionedConfig struct {
	FunctionName string    `json:"function_name"`
	Qualifier    string    `json:"qualifier"`
	Requested    int       `json:"requested"`
	LastModified time.Time `json:"last_modified"`
}

func (r *Registry) provisionedSum(name string) int {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	sum := 0
	for _, pc := range r.cache.provisioned {
		if pc.FunctionName == name {
			sum += pc.Requested
		}
	}
	return sum
}

// ProvisionedTotal is the provisioned concurrency of every function.
func (r *Registry) ProvisionedTotal() int {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	sum := 0
	for _, pc := range r.cache.provisioned {
		sum += pc.Requested
	}
	return sum
}

// PutProvisioned sets a version's or alias's provisioned concurrency.
// $LATEST is refused, as on Lambda; the function's total may not exceed
// its reserved concurrency, nor the account's (with unreserved functions'
// provisioned concurrency) maxUnreserved.
func (r *Registry) PutProvisioned(ctx context.Context, name, qualifier string, n, maxUnreserved int) (ProvisionedConfig, error) {
	if err := lambdaerr.IntRange(n, "provisionedConcurrentExecutions", 1, math.MaxInt32); err != nil {
		return ProvisionedConfig{}, err
	}
	if err := r.checkProvisionable(ctx, name, qualifier); err != nil {
		return ProvisionedConfig{}, err
	}
	if err := r.writable(); err != nil {
		return ProvisionedConfig{}, err
	}
	old, _ := r.provisioned(name, qualifier)
	sum := r.provisionedSum(name) - old.Requested + n
	if reserved, ok := r.Reserved(name); ok && sum > reserved {
		return ProvisionedConfig{}, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function")
	} else if !ok && r.ProvisionedTotal()-old.Requested+n > maxUnreserved {
		return ProvisionedConfig{}, lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [%d].", maxUnreserved)
	}
	pc := ProvisionedConfig{FunctionName: name, Qualifier: qualifier, Requested: n, LastModified: r.opts.Now().UTC()}
	if err := r.putConfig(ctx, provisionedKey(name, qualifier), pc, 0); err != nil {
		return ProvisionedConfig{}, err
	}
	return pc, nil
}

func provisionedKey(name, qualifier string) string { return provisionedPrefix + name + "." + qualifier }

// checkProvisionable refuses $LATEST, unknown qualifiers, and provisioning
// both an alias and a version it routes to.
func (r *Registry) checkProvisionable(ctx context.Context, name, qualifier string) error {
	if qualifier == "" || qualifier == Latest {
		return lambdaerr.New(lambdaerr.InvalidParameterValue,
			"Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
	}
	t, err := r.Resolve(ctx, name, qualifier)
	if err != nil {
		return err
	}
	if t.Alias != nil {
		for _, v := range aliasVersions(*t.Alias) {
			if _, ok := r.provisioned(name, v); ok {
				return lambdaerr.New(lambdaerr.ResourceConflict,
					"Alias can't be allocated provisioned concurrency because it is already allocated to version %s", v)
			}
		}
		return nil
	}
	aliases, err := r.ListAliases(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		if _, ok := r.provisioned(name, a.Name); ok && contains(aliasVersions(a), qualifier) {
			return lambdaerr.New(lambdaerr.ResourceConflict,
				"Version can't be allocated provisioned concurrency because it is already allocated through alias %s", a.Name)
		}
	}
	return nil
}

func aliasVersions(a Alias) []string {
	vs := []string{a.FunctionVersion}
	for v := range a.AdditionalVersionWeights {
		vs = append(vs, v)
	}
	return vs
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r *Registry) provisioned(name, qualifier string) (ProvisionedConfig, bool) {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	pc, ok := r.cache.provisioned[provisionedKey(name, qualifier)]
	return pc, ok
}

// GetProvisioned returns the provisioned concurrency config of name:qualifier.
func (r *Registry) GetProvisioned(ctx context.Context, name, qualifier string) (ProvisionedConfig, error) {
	if _, err := r.Resolve(ctx, name, qualifier); err != nil {
		return ProvisionedConfig{}, err
	}
	pc, err := loadConfig(ctx, r, provisionedKey(name, qualifier), r.cache.provisioned)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return ProvisionedConfig{}, lambdaerr.New(lambdaerr.ProvisionedConfigNotFound,
			"No Provisioned Concurrency Config found for this function")
	}
	return pc, err
}

// ListProvisioned returns a function's provisioned concurrency configs,
// sorted by qualifier.
func (r *Registry) ListProvisioned(ctx context.Context, name string) ([]ProvisionedConfig, error) {
	if _, err := r.Get(ctx, name); err != nil {
		return nil, err
	}
	return configsOf(&r.cache.mu, r.cache.provisioned, name), nil
}

// DeleteProvisioned removes a provisioned concurrency config.
func (r *Registry) DeleteProvisioned(ctx context.Context, name, qualifier string) error {
	if _, err := r.GetProvisioned(ctx, name, qualifier); err != nil {
		return err
	}
	return r.deleteConfig(ctx, provisionedKey(name, qualifier))
}

// ProvisionedTarget is one version to keep N environments of.
type ProvisionedTarget struct {
	Function Function
	N        int
}

// ProvisionedTargets resolves every provisioned concurrency config to the
// versions it keeps warm: a version's own count; an alias's split over its
// versions by weight. Configs that no longer resolve are skipped.
func (r *Registry) ProvisionedTargets(ctx context.Context) ([]ProvisionedTarget, error) {
	r.cache.mu.RLock()
	configs := make([]ProvisionedConfig, 0, len(r.cache.provisioned))
	for _, pc := range r.cache.provisioned {
		configs = append(configs, pc)
	}
	r.cache.mu.RUnlock()
	sort.Slice(configs, func(i, j int) bool {
		return configs[i].FunctionName+"."+configs[i].Qualifier < configs[j].FunctionName+"."+configs[j].Qualifier
	})
	var out []ProvisionedTarget
	for _, pc := range configs {
		ts, err := r.SplitProvisioned(ctx, pc)
		if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// SplitProvisioned resolves one config to the versions it keeps warm: a
// version's own count, or an alias's split over its versions by weight.
func (r *Registry) SplitProvisioned(ctx context.Context, pc ProvisionedConfig) ([]ProvisionedTarget, error) {
	t, err := r.Resolve(ctx, pc.FunctionName, pc.Qualifier)
	if err != nil {
		return nil, err
	}
	if t.Alias == nil {
		return []ProvisionedTarget{{Function: t.Function, N: pc.Requested}}, nil
	}
	var out []ProvisionedTarget
	rest := pc.Requested
	for v, w := range t.Alias.AdditionalVersionWeights {
		n := int(math.Round(float64(pc.Requested) * w))
		if n == 0 {
			continue
		}
		f, err := r.Version(ctx, pc.FunctionName, v)
		if err != nil {
			return nil, err
		}
		out = append(out, ProvisionedTarget{Function: f, N: n})
		rest -= n
	}
	if rest > 0 {
		out = append(out, ProvisionedTarget{Function: t.Function, N: rest})
	}
	return out, nil
}

func (pc ProvisionedConfig) owner() (name, qualifier string) { return pc.FunctionName, pc.Qualifier }

// Recursive loop settings (PutFunctionRecursionConfig).
const (
	RecursionAllow     = "Allow"
	RecursionTerminate = "Terminate"
	// MaxChainDepth is how many hops a chain of events may take before
	// the next one is stopped as a recursive loop (Lambda: about 16).
	MaxChainDepth = 16
)

// PutRecursiveLoop sets whether a function's recursive loops are stopped
// (Terminate) or allowed (Allow). $LATEST's RevisionId does not change.
func (r *Registry) PutRecursiveLoop(ctx context.Context, name, setting string) error {
	if setting != RecursionAllow && setting != RecursionTerminate {
		return lambdaerr.ValidationFailed(setting, "recursiveLoop", "Member must satisfy enum value set: [Terminate, Allow]")
	}
	if err := r.writable(); err != nil {
		return err
	}
	return r.changeLatest(ctx, name, func(f *Function) error {
		f.RecursiveLoop = ""
		if setting == RecursionAllow {
			f.RecursiveLoop = RecursionAllow
		}
		return nil
	})
}

// RecursionAllowed says whether the function named name lets chains of
// events loop past MaxChainDepth, from the in-memory mirror.
func (r *Registry) RecursionAllowed(name string) bool {
	v, ok := r.cache.get(functionKey(name))
	if !ok {
		return false
	}
	f, _ := v.(Function)
	return f.RecursiveLoop == RecursionAllow
}
