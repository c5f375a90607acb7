package vmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Where things are in the initramfs, and the file names on the scratch
// share.
const (
	initramfsPlan    = "plan.json"
	initramfsModules = "modules"
	reportFile       = "report.json"
	testLogFile      = "test.log"
	rootTag          = "hostroot"
)

// reportLinePrefix starts the console line that carries the report (as
// one line of JSON). The host reads the report from the console, which
// needs nothing of the guest but its serial port: the copy on the
// scratch share goes through 9p, which can stall (a stalled 9p write
// once silenced a whole CI run until its 40-minute timeout).
const reportLinePrefix = "v2guest-report: "

// reportLine is rep as a console line, newline included.
func reportLine(rep *Report) []byte {
	b, err := json.Marshal(rep)
	if err != nil { // a Report always marshals; keep the line well formed anyway
		b = []byte(`{"Err":"marshalling the report failed"}`)
	}
	return append(append([]byte(reportLinePrefix), b...), '\n')
}

// parseReportLine returns the report a console line carries, if any. The
// serial console may add a carriage return, and kernel messages may
// precede the prefix on the same line.
func parseReportLine(line string) (*Report, bool) {
	i := strings.Index(line, reportLinePrefix)
	if i < 0 {
		return nil, false
	}
	var r Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(line[i+len(reportLinePrefix):])), &r); err != nil {
		return nil, false
	}
	return &r, true
}

// final reports whether r is the guest's last word: every test ran, or
// the init failed.
func (r *Report) final() bool { return r != nil && (r.Done || r.Err != "") }

// Plan is what the guest init does, written by the host into the
// initramfs as plan.json.
type Plan struct {
	// Modules are the initramfs paths of the kernel modules to load, in
	// order, before mounting the host root.
	Modules []string
	// Shares are writable 9p shares, mounted at the same path as on the
	// host (over the read-only root). The first one is the scratch
	// directory: the test binaries, the log and the report live there.
	Shares []Share
	// Tmpfs are the directories that get an empty tmpfs (tests write there).
	Tmpfs []string
	// Hide are files the guest covers with an empty, non-executable file
	// (a read-only bind mount), for programs the tests must not find there.
	Hide []string
	// Env is the environment of every test binary.
	Env []string
	// Tests run one after the other.
	Tests []TestRun
}

// Share is a host directory exported to the guest with -virtfs.
type Share struct {
	Tag  string // mount_tag, at most 31 bytes
	Path string // host path, and mount point in the guest
}

// TestRun is one test binary run.
type TestRun struct {
	Name   string   // for the report
	Binary string   // absolute path (on the scratch share)
	Dir    string   // working directory: the package's source directory
	Args   []string // -test.run, -test.v...
	// TimeoutSeconds bounds the run (the binary's own -test.timeout should
	// be shorter, so a hung test prints its goroutines).
	TimeoutSeconds int
}

// Report is what the guest prints on the console (reportLinePrefix) and
// writes to the scratch share: after each test, and once more at the end.
type Report struct {
	// InitUptime is the guest's uptime when the init started (kernel boot),
	// ReadyUptime when the root was switched and the first test started.
	InitUptime, ReadyUptime float64
	Results                 []Result
	// Done is set by the last write, after every test ran.
	Done bool
	// Err is the init's own failure (a mount, a module), if any.
	Err string `json:",omitempty"`
}

// Result is the outcome of one TestRun.
type Result struct {
	Name     string
	ExitCode int // -1: did not start or was killed
	Seconds  float64
	Err      string `json:",omitempty"`
}

// Failed reports whether the test binary failed.
func (r Result) Failed() bool { return r.ExitCode != 0 || r.Err != "" }

// ReadReport reads the report the guest left in the scratch directory.
func ReadReport(scratch string) (*Report, error) {
	b, err := os.ReadFile(filepath.Join(scratch, reportFile))
	if err != nil {
		return nil, fmt.Errorf("reading the guest's report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parsing the guest's report: %w", err)
	}
	return &r, nil
}

// writeFile writes b to path through a temporary file and a rename, so a
// reader never sees half a file.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
