package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
)

// URLConfig is a function URL: an HTTP endpoint of $LATEST or of an
// alias, served by Owl's API listener under /lambda-url/<URLID>/.
type URLConfig struct {
	FunctionName string `json:"function_name"`
	Qualifier    string `json:"qualifier"` // "$LATEST" or an alias
	// URLID is the URL's random id (32 lower-case letters and digits, as
	// Lambda's), its address.
	URLID        string    `json:"url_id"`
	AuthType     string    `json:"auth_type"` // AuthNone or AuthIAM
	Cors         *Cors     `json:"cors,omitempty"`
	InvokeMode   string    `json:"invoke_mode"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"last_modified"`
}

// Cors is a function URL's cross-origin resource sharing settings.
type Cors struct {
	AllowCredentials bool     `json:"allow_credentials,omitempty"`
	AllowHeaders     []string `json:"allow_headers,omitempty"`
	AllowMethods     []string `json:"allow_methods,omitempty"`
	AllowOrigins     []string `json:"allow_origins,omitempty"`
	ExposeHeaders    []string `json:"expose_headers,omitempty"`
	MaxAge           int      `json:"max_age,omitempty"`
}

// Function URL auth types and invoke modes.
const (
	AuthNone       = "NONE"
	AuthIAM        = "AWS_IAM"
	InvokeBuffered = "BUFFERED"
	// InvokeResponseStream streams the function's response to the client
	// as it is written (lambdaapi/urlstream.go).
	InvokeResponseStream = "RESPONSE_STREAM"
)

func (c URLConfig) owner() (name, qualifier string) { return c.FunctionName, c.Qualifier }

// URLConfigInput is what Create and Update give; nil fields were not
// given (Update: unchanged).
type URLConfigInput struct {
	AuthType   *string
	Cors       *Cors
	InvokeMode *string
}

func urlConfigKey(name, qualifier string) string {
	if qualifier == "" || qualifier == Latest {
		qualifier = "=latest"
	}
	return urlPrefix + name + "." + qualifier
}

// urlQualifier checks name:qualifier can have a URL ($LATEST or an
// existing alias; not a version number) and returns it as stored.
func (r *Registry) urlQualifier(ctx context.Context, name, qualifier string) (string, error) {
	if IsVersion(qualifier) {
		return "", lambdaerr.ValidationFailed(qualifier, "qualifier", `Member must satisfy regular expression pattern: (^\$LATEST$)|((?!^[0-9]+$)([a-zA-Z0-9-_]+))`)
	}
	if _, err := r.Resolve(ctx, name, qualifier); err != nil {
		return "", err
	}
	if qualifier == "" {
		return Latest, nil
	}
	return qualifier, nil
}

// CreateURLConfig gives name:qualifier a function URL.
func (r *Registry) CreateURLConfig(ctx context.Context, name, qualifier string, in URLConfigInput) (URLConfig, error) {
	qualifier, err := r.urlQualifier(ctx, name, qualifier)
	if err != nil {
		return URLConfig{}, err
	}
	if in.AuthType == nil {
		return URLConfig{}, lambdaerr.ValidationFailed("null", "authType", "Member must not be null")
	}
	if err := checkURLInput(in); err != nil {
		return URLConfig{}, err
	}
	if err := r.writable(); err != nil {
		return URLConfig{}, err
	}
	key := urlConfigKey(name, qualifier)
	var existing URLConfig
	if _, err := r.read(ctx, key, &existing); err == nil {
		return URLConfig{}, lambdaerr.New(lambdaerr.ResourceConflict, "Failed to create function url config for [functionArn = %s]. Error message:  FunctionUrlConfig exists for this Lambda function", r.ARN(name, qualifier))
	} else if !lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return URLConfig{}, err
	}
	now := r.opts.Now().UTC()
	c := URLConfig{FunctionName: name, Qualifier: qualifier, URLID: lambdawire.NewID(32), AuthType: *in.AuthType,
		Cors: in.Cors, InvokeMode: InvokeBuffered, Created: now, LastModified: now}
	if in.InvokeMode != nil {
		c.InvokeMode = *in.InvokeMode
	}
	if err := r.putConfig(ctx, key, c, 0); err != nil {
		return URLConfig{}, err
	}
	return c, nil
}

// UpdateURLConfig changes what in gives of name:qualifier's function URL.
func (r *Registry) UpdateURLConfig(ctx context.Context, name, qualifier string, in URLConfigInput) (URLConfig, error) {
	qualifier, err := r.urlQualifier(ctx, name, qualifier)
	if err != nil {
		return URLConfig{}, err
	}
	if err := checkURLInput(in); err != nil {
		return URLConfig{}, err
	}
	if err := r.writable(); err != nil {
		return URLConfig{}, err
	}
	key := urlConfigKey(name, qualifier)
	var c URLConfig
	rev, err := r.read(ctx, key, &c)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return URLConfig{}, r.noURLConfig(name, qualifier)
	} else if err != nil {
		return URLConfig{}, err
	}
	if in.AuthType != nil {
		c.AuthType = *in.AuthType
	}
	if in.Cors != nil {
		c.Cors = in.Cors
	}
	if in.InvokeMode != nil {
		c.InvokeMode = *in.InvokeMode
	}
	c.LastModified = r.opts.Now().UTC()
	if err := r.putConfig(ctx, key, c, rev); err != nil {
		return URLConfig{}, err
	}
	return c, nil
}

// GetURLConfig returns name:qualifier's function URL.
func (r *Registry) GetURLConfig(ctx context.Context, name, qualifier string) (URLConfig, error) {
	qualifier, err := r.urlQualifier(ctx, name, qualifier)
	if err != nil {
		return URLConfig{}, err
	}
	c, err := loadConfig(ctx, r, urlConfigKey(name, qualifier), r.cache.urlConfigs)
	if lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
		return URLConfig{}, r.noURLConfig(name, qualifier)
	}
	return c, err
}

// ListURLConfigs returns a function's URLs, sorted by qualifier.
func (r *Registry) ListURLConfigs(ctx context.Context, name string) ([]URLConfig, error) {
	if _, err := r.Get(ctx, name); err != nil {
		return nil, err
	}
	return configsOf(&r.cache.mu, r.cache.urlConfigs, name), nil
}

// DeleteURLConfig removes name:qualifier's function URL.
func (r *Registry) DeleteURLConfig(ctx context.Context, name, qualifier string) error {
	c, err := r.GetURLConfig(ctx, name, qualifier)
	if err != nil {
		return err
	}
	return r.deleteConfig(ctx, urlConfigKey(name, c.Qualifier))
}

// URLByID returns the function URL with id, from the in-memory mirror.
func (r *Registry) URLByID(id string) (URLConfig, bool) {
	r.cache.mu.RLock()
	defer r.cache.mu.RUnlock()
	key, ok := r.cache.urlByID[id]
	if !ok {
		return URLConfig{}, false
	}
	c, ok := r.cache.urlConfigs[key]
	return c, ok
}

func (r *Registry) noURLConfig(name, qualifier string) error {
	return lambdaerr.New(lambdaerr.ResourceNotFound, "The resource you requested does not exist. (Function URL config for %s)", r.ARN(name, qualifier))
}

// checkURLInput checks a URL config's fields against Lambda's limits.
func checkURLInput(in URLConfigInput) error {
	if in.AuthType != nil && *in.AuthType != AuthNone && *in.AuthType != AuthIAM {
		return lambdaerr.ValidationFailed(*in.AuthType, "authType", "Member must satisfy enum value set: [NONE, AWS_IAM]")
	}
	if in.InvokeMode != nil {
		switch *in.InvokeMode {
		case InvokeBuffered, InvokeResponseStream:
		default:
			return lambdaerr.ValidationFailed(*in.InvokeMode, "invokeMode", "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]")
		}
	}
	c := in.Cors
	if c == nil {
		return nil
	}
	if c.MaxAge < 0 || c.MaxAge > 86400 {
		return lambdaerr.ValidationFailed(fmt.Sprint(c.MaxAge), "cors.maxAge", "Member must have value less than or equal to 86400")
	}
	for _, l := range []struct {
		name   string
		values []string
		maxLen int
	}{
		{"allowHeaders", c.AllowHeaders, 1024}, {"allowMethods", c.AllowMethods, 6},
		{"allowOrigins", c.AllowOrigins, 253}, {"exposeHeaders", c.ExposeHeaders, 1024},
	} {
		if len(l.values) > 100 {
			return lambdaerr.ValidationFailed(fmt.Sprint(len(l.values)), "cors."+l.name, "Member must have length less than or equal to 100")
		}
		for _, v := range l.values {
			if v == "" || len(v) > l.maxLen {
				return lambdaerr.ValidationFailed(v, "cors."+l.name, fmt.Sprintf("Member must have length between 1 and %d", l.maxLen))
			}
		}
	}
	for _, m := range c.AllowMethods {
		if m != "*" && strings.ToUpper(m) != m {
			return lambdaerr.New(lambdaerr.InvalidParameterValue, "AllowMethods %q: an HTTP method in capitals, or *.", m)
		}
	}
	return nil
}
