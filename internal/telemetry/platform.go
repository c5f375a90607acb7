package telemetry

import (
	"encoding/json"
	"math"
	"time"
)

// Platform events: the START and REPORT lines of a function whose
// LoggingConfig is JSON, one JSON object a line as Lambda writes them to
// CloudWatch: {"time","type","record"}. (Lambda writes no END line in
// JSON: platform.report ends the invocation.) Both are INFO-level system
// logs, dropped by SystemLogLevel WARN.

type platformEvent struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Record any    `json:"record"`
}

type startRecord struct {
	RequestID string `json:"requestId"`
	Version   string `json:"version"`
}

type reportRecord struct {
	RequestID string        `json:"requestId"`
	Metrics   reportMetrics `json:"metrics"`
	Status    string        `json:"status"`
	ErrorType string        `json:"errorType,omitempty"`
}

type reportMetrics struct {
	DurationMs       float64  `json:"durationMs"`
	BilledDurationMs int64    `json:"billedDurationMs"`
	MemorySizeMB     int      `json:"memorySizeMB"`
	MaxMemoryUsedMB  int      `json:"maxMemoryUsedMB"`
	InitDurationMs   *float64 `json:"initDurationMs,omitempty"`
}

// eventTime is Lambda's "time" of a platform event: UTC, milliseconds.
func eventTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// PlatformStart is the platform.start event of an invocation, at t.
func PlatformStart(t time.Time, requestID, version string) string {
	return event(t, "platform.start", startRecord{RequestID: requestID, Version: version})
}

// PlatformReport is the platform.report event of r, at t: the REPORT
// line's figures (durations in ms to two decimals), status success, or
// timeout or error with the error type when the runtime failed.
func (r Report) PlatformReport(t time.Time) string {
	rec := reportRecord{RequestID: r.RequestID, Status: "success", Metrics: reportMetrics{
		DurationMs:       round2(ms(r.Duration)),
		BilledDurationMs: Billed(r.Duration, r.InitDuration),
		MemorySizeMB:     r.MemoryMB,
		MaxMemoryUsedMB:  r.MaxMemoryMB,
	}}
	if r.InitDuration > 0 {
		d := round2(ms(r.InitDuration))
		rec.Metrics.InitDurationMs = &d
	}
	if r.ErrorType != "" {
		rec.Status, rec.ErrorType = "error", r.ErrorType
		if r.ErrorType == "Sandbox.Timedout" {
			rec.Status = "timeout"
		}
	}
	return event(t, "platform.report", rec)
}

func event(t time.Time, typ string, rec any) string {
	b, _ := json.Marshal(platformEvent{Time: eventTime(t), Type: typ, Record: rec})
	return string(b)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
