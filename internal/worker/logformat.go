package worker

import (
	"time"

	"github.com/owl-project/owl/internal/registry"
	"github.com/owl-project/owl/internal/telemetry"
)

// The platform's lines of an invocation in the function's LoggingConfig
// format: Lambda's START, END and REPORT text lines, or, with JSON, its
// platform.start and platform.report events (INFO-level system logs,
// which SystemLogLevel WARN drops). Each is "" when dropped, else ends
// with a newline; the Text lines are byte for byte what they always were.

// systemInfo reports whether fn's log keeps INFO-level system logs.
func systemInfo(fn registry.Function) bool {
	return !fn.Logging.JSON() || fn.Logging.SystemLevel != "WARN"
}

// startText is the START line of an invocation of fn that started at.
func startText(fn registry.Function, requestID, version string, at time.Time) string {
	switch {
	case !fn.Logging.JSON():
		return telemetry.StartLine(requestID, version) + "\n"
	case systemInfo(fn):
		return telemetry.PlatformStart(at, requestID, version) + "\n"
	}
	return ""
}

// endText is the END and REPORT lines of an invocation of fn.
func endText(fn registry.Function, rep telemetry.Report) string {
	switch {
	case !fn.Logging.JSON():
		end := telemetry.EndLine(rep.RequestID) + "\n"
		return string(rep.AppendLine([]byte(end))) + "\n"
	case systemInfo(fn):
		return rep.PlatformReport(time.Now()) + "\n"
	}
	return ""
}
