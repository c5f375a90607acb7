package registry

import (
	"regexp"
	"slices"
	"strings"

	"github.com/owl-project/owl/internal/lambdaerr"
)

// Log formats of a function (LoggingConfig.LogFormat).
const (
	LogText = "Text"
	LogJSON = "JSON"
)

// Lambda's log levels: an application's (ApplicationLogLevel, most to
// least detail) and the platform's (SystemLogLevel).
var (
	AppLogLevels    = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
	SystemLogLevels = []string{"DEBUG", "INFO", "WARN"}
)

// DefaultLogLevel is both levels of a JSON function that names none.
const DefaultLogLevel = "INFO"

var logGroupRe = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]+$`)

// Logging is a function's LoggingConfig. The zero value is Lambda's
// default: Text, no levels, the log group /aws/lambda/<name>; a stored
// Text function keeps Format "" so that functions stored before it
// existed are unchanged.
type Logging struct {
	// Format is LogJSON, or "" for Text.
	Format string `json:"format,omitempty"`
	// AppLevel and SystemLevel are set (to one of AppLogLevels and
	// SystemLogLevels) exactly when Format is LogJSON.
	AppLevel    string `json:"application_level,omitempty"`
	SystemLevel string `json:"system_level,omitempty"`
	// Group is the log group the function names; "" is /aws/lambda/<name>.
	Group string `json:"group,omitempty"`
}

// JSON reports whether the function's logs are in the JSON format.
func (l Logging) JSON() bool { return l.Format == LogJSON }

// FormatName is LogFormat as Lambda reports it.
func (l Logging) FormatName() string {
	if l.JSON() {
		return LogJSON
	}
	return LogText
}

// LogGroup is the function's log group.
func (l Logging) LogGroup(name string) string {
	if l.Group != "" {
		return l.Group
	}
	return "/aws/lambda/" + name
}

// LoggingChange is a LoggingConfig of a create or update request: the
// fields it sets ("" leaves a field as it is).
type LoggingChange struct {
	LogFormat, ApplicationLogLevel, SystemLogLevel, LogGroup string
}

// Apply is l changed by c, as Lambda does (the error for levels with Text
// is Lambda's, word for word): the fields c sets replace l's;
// levels exist only in the JSON format (a request that sets one for a
// Text function is refused; switching to Text drops them), and a JSON
// function's unset levels are INFO.
func (l Logging) Apply(c LoggingChange) (Logging, error) {
	if err := c.check(); err != nil {
		return l, err
	}
	if c.LogFormat != "" {
		l.Format = ""
		if c.LogFormat == LogJSON {
			l.Format = LogJSON
		}
	}
	if c.LogGroup != "" {
		l.Group = c.LogGroup
	}
	if !l.JSON() {
		if c.ApplicationLogLevel != "" || c.SystemLogLevel != "" {
			return l, lambdaerr.New(lambdaerr.InvalidParameterValue,
				`LogLevel is not supported when LogFormat is set to "Text". Remove LogLevel from your request or change the LogFormat to "Json" and try again.`)
		}
		l.AppLevel, l.SystemLevel = "", ""
		return l, nil
	}
	if c.ApplicationLogLevel != "" {
		l.AppLevel = c.ApplicationLogLevel
	}
	if c.SystemLogLevel != "" {
		l.SystemLevel = c.SystemLogLevel
	}
	if l.AppLevel == "" {
		l.AppLevel = DefaultLogLevel
	}
	if l.SystemLevel == "" {
		l.SystemLevel = DefaultLogLevel
	}
	return l, nil
}

// check validates each field of c on its own, with Lambda's messages.
func (c LoggingChange) check() error {
	if c.LogFormat != "" && c.LogFormat != LogJSON && c.LogFormat != LogText {
		return enumError(c.LogFormat, "loggingConfig.logFormat", []string{LogJSON, LogText})
	}
	if c.ApplicationLogLevel != "" && !slices.Contains(AppLogLevels, c.ApplicationLogLevel) {
		return enumError(c.ApplicationLogLevel, "loggingConfig.applicationLogLevel", AppLogLevels)
	}
	if c.SystemLogLevel != "" && !slices.Contains(SystemLogLevels, c.SystemLogLevel) {
		return enumError(c.SystemLogLevel, "loggingConfig.systemLogLevel", SystemLogLevels)
	}
	if c.LogGroup != "" {
		if len(c.LogGroup) > 512 {
			return lambdaerr.ValidationFailed(c.LogGroup, "loggingConfig.logGroup", "Member must have length less than or equal to 512")
		}
		if !logGroupRe.MatchString(c.LogGroup) {
			return lambdaerr.ValidationFailed(c.LogGroup, "loggingConfig.logGroup", `Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+`)
		}
	}
	return nil
}

func enumError(v, field string, set []string) error {
	return lambdaerr.ValidationFailed(v, field, "Member must satisfy enum value set: ["+strings.Join(set, ", ")+"]")
}

// validate checks a stored Logging (what Apply makes).
func (l Logging) validate() error {
	c := LoggingChange{LogFormat: l.FormatName(), ApplicationLogLevel: l.AppLevel, SystemLogLevel: l.SystemLevel, LogGroup: l.Group}
	if err := c.check(); err != nil {
		return err
	}
	if _, err := l.Apply(c); err != nil {
		return err
	}
	if l.JSON() && (l.AppLevel == "" || l.SystemLevel == "") {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "A JSON LoggingConfig needs ApplicationLogLevel and SystemLogLevel.")
	}
	return nil
}
