package registry

import (
	"context"
	"maps"
	"strings"
	"unicode/utf8"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Tags are stored on a function's $LATEST record (Function.Tags), so they
// live in the functions bucket with it, survive restarts and go with it.
// They belong to the function, not to a version: TagResource takes only
// the unqualified ARN, and a changed tag does not change what runs
// ($LATEST's RevisionId stays).

// Lambda's limits on tags.
const (
	// MaxTags is how many tags a function may have.
	MaxTags = 50
	// MaxTagKey and MaxTagValue bound a key's and a value's length, in
	// characters.
	MaxTagKey   = 128
	MaxTagValue = 256
	// reservedTagPrefix starts the keys AWS keeps for itself, in any case.
	reservedTagPrefix = "aws:"
)

// CheckTags checks tags against Lambda's limits on a key (1–128
// characters, not starting with aws:) and a value (0–256 characters).
func CheckTags(tags map[string]string) error {
	for k, v := range tags {
		if err := checkTagKey(k); err != nil {
			return err
		}
		if !utf8.ValidString(v) || utf8.RuneCountInString(v) > MaxTagValue {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "The value of tag %q must be at most %d characters of UTF-8.", k, MaxTagValue)
		}
	}
	if len(tags) > MaxTags {
		return tooManyTags(len(tags))
	}
	return nil
}

// checkTagKey checks one key's length and prefix.
func checkTagKey(k string) error {
	if n := utf8.RuneCountInString(k); n < 1 || n > MaxTagKey || !utf8.ValidString(k) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "The tag key %q must be 1 to %d characters of UTF-8.", k, MaxTagKey)
	}
	if len(k) >= len(reservedTagPrefix) && strings.EqualFold(k[:len(reservedTagPrefix)], reservedTagPrefix) {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "The tag key %q starts with %q, which is reserved for AWS use.", k, reservedTagPrefix)
	}
	return nil
}

func tooManyTags(n int) error {
	return lambdaerr.New(lambdaerr.InvalidParameterValue, "A function may have at most %d tags; this request would give it %d.", MaxTags, n)
}

// Tags returns the tags of function name (never nil).
func (r *Registry) Tags(ctx context.Context, name string) (map[string]string, error) {
	f, err := r.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if f.Tags == nil {
		return map[string]string{}, nil
	}
	return maps.Clone(f.Tags), nil
}

// TagFunction adds tags to function name, replacing the values of keys it
// has; the result may have at most MaxTags.
func (r *Registry) TagFunction(ctx context.Context, name string, tags map[string]string) error {
	if err := CheckTags(tags); err != nil {
		return err
	}
	if err := r.writable(); err != nil {
		return err
	}
	return r.changeLatest(ctx, name, func(f *Function) error {
		merged := maps.Clone(f.Tags)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTags {
			return tooManyTags(len(merged))
		}
		f.Tags = merged
		return nil
	})
}

// UntagFunction removes the tags keys from function name; keys it does
// not have are ignored, as Lambda ignores them.
func (r *Registry) UntagFunction(ctx context.Context, name string, keys []string) error {
	for _, k := range keys {
		if err := checkTagKey(k); err != nil {
			return err
		}
	}
	if err := r.writable(); err != nil {
		return err
	}
	return r.changeLatest(ctx, name, func(f *Function) error {
		tags := maps.Clone(f.Tags)
		for _, k := range keys {
			delete(tags, k)
		}
		if len(tags) == 0 {
			tags = nil
		}
		f.Tags = tags
		return nil
	})
}
