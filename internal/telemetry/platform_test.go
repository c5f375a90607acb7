package telemetry

import (
	"testing"
	"time"
)

func TestPlatformEvents(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("x", 3600))
	if got, want := PlatformStart(at, "id-1", "$LATEST"),
		`{"time":"2026-01-02T02:04:05.678Z","type":"platform.start","record":{"requestId":"id-1","version":"$LATEST"}}`; got != want {
		t.Errorf("PlatformStart = %s\nwant %s", got, want)
	}
	r := Report{RequestID: "id-1", Duration: 12345678 * time.Nanosecond, MemoryMB: 128, MaxMemoryMB: 40, InitDuration: 100500 * time.Microsecond}
	if got, want := r.PlatformReport(at),
		`{"time":"2026-01-02T02:04:05.678Z","type":"platform.report","record":{"requestId":"id-1","metrics":{"durationMs":12.35,"billedDurationMs":113,"memorySizeMB":128,"maxMemoryUsedMB":40,"initDurationMs":100.5},"status":"success"}}`; got != want {
		t.Errorf("PlatformReport = %s\nwant %s", got, want)
	}
	r.InitDuration, r.ErrorType = 0, "Sandbox.Timedout"
	if got, want := r.PlatformReport(at),
		`{"time":"2026-01-02T02:04:05.678Z","type":"platform.report","record":{"requestId":"id-1","metrics":{"durationMs":12.35,"billedDurationMs":13,"memorySizeMB":128,"maxMemoryUsedMB":40},"status":"timeout","errorType":"Sandbox.Timedout"}}`; got != want {
		t.Errorf("PlatformReport (timeout) = %s\nwant %s", got, want)
	}
	r.ErrorType = "Runtime.ExitError"
	if got := r.PlatformReport(at); got[len(got)-50:] != `"status":"error","errorType":"Runtime.ExitError"}}` {
		t.Errorf("PlatformReport (exit) = %s", got)
	}
}
