// Package hostcheck owns the answer to "can this host run Owl?": one check
// per thing `owl serve` relies on (root, the kernel's version, cgroups and
// their controllers, namespaces, seccomp, nft for egress, the interpreters,
// the data dir and its free space, swap, the API port), each ending ok,
// warn or fail with what it found and, unless ok, the fix in one sentence.
// `owl doctor` prints the report; `owl serve` runs the same checks before it
// sets anything up and refuses to start on a fail.
//
// The checks read the host through a Host, whose Root is where /proc and
// /sys are read (a fake tree in tests) and whose function fields are the
// probes that touch the real system (starting a process in new namespaces,
// asking nft, binding the port, statfs). Checks never change the host: the
// only things they create are a temporary file in the data dir (removed at
// once), the probe's short-lived namespaces and a listener closed at once.
package hostcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// Status is the outcome of one check.
type Status int

const (
	// OK: the host has what Owl needs.
	OK Status = iota
	// Warn: Owl runs, with a limitation the message names.
	Warn
	// Fail: `owl serve` cannot work; it refuses to start.
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText makes a Status "ok", "warn" or "fail" in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Result is one check's line.
type Result struct {
	// Name is the short name of what was checked ("kernel", "cgroups"...).
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Message says what was found.
	Message string `json:"message"`
	// Fix is one sentence saying what to do; empty when Status is OK.
	Fix string `json:"fix,omitempty"`
}

// Line is the result in one line without its status: "name: message",
// then "; fix: ..." when there is a fix. doctor and serve print the same
// words.
func (r Result) Line() string {
	s := r.Name + ": " + r.Message
	if r.Fix != "" {
		s += "; fix: " + r.Fix
	}
	return s
}

// Report is every check's result, in a fixed order.
type Report []Result

// Failed lists the results with status Fail.
func (r Report) Failed() []Result { return r.with(Fail) }

// Warnings lists the results with status Warn.
func (r Report) Warnings() []Result { return r.with(Warn) }

func (r Report) with(s Status) []Result {
	var out []Result
	for _, res := range r {
		if res.Status == s {
			out = append(out, res)
		}
	}
	return out
}

// Text renders the report for a terminal: one line per check, the status
// first, the fix after the message.
func (r Report) Text() string {
	width := 0
	for _, res := range r {
		width = max(width, len(res.Name))
	}
	var b strings.Builder
	for _, res := range r {
		fmt.Fprintf(&b, "%-4s  %-*s  %s", res.Status, width, res.Name, res.Message)
		if res.Fix != "" {
			fmt.Fprintf(&b, "; fix: %s", res.Fix)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// JSON renders the report as {"ok": bool, "checks": [...]}, ok being
// false when a check failed.
func (r Report) JSON() ([]byte, error) {
	checks := r
	if checks == nil {
		checks = Report{}
	}
	return json.MarshalIndent(struct {
		OK     bool   `json:"ok"`
		Checks Report `json:"checks"`
	}{len(r.Failed()) == 0, checks}, "", "  ")
}

// Options is the server configuration the checks judge the host for: what
// `owl serve` would use (the same flags and environment).
type Options struct {
	// DataDir is --data (OWL_DATA).
	DataDir string
	// Addr is the API's listen address, --addr (OWL_ADDR).
	Addr string
	// NetworkEgress is --network-egress (OWL_NETWORK_EGRESS): nft is needed.
	NetworkEgress bool
	// Prewarm is --prewarm (OWL_PREWARM): > 0 needs mount_setattr (5.12).
	Prewarm int
	// DiskReserveBytes is the free space owl serve keeps on the data dir's
	// disk (--disk-reserve): a start needs it and the smallest store.
	DiskReserveBytes int64
	// NoSandboxes is a node that runs none (--role api): only its data
	// dir, disk and port are checked.
	NoSandboxes bool
}

// Run runs every check on h for a server configured as o.
func Run(ctx context.Context, h Host, o Options) Report {
	if o.NoSandboxes {
		return Report{h.DataDir(o), h.Disk(o), h.Port(o)}
	}
	return Report{
		h.User(),
		h.Kernel(o),
		h.Cgroups(),
		h.Namespaces(ctx),
		h.Seccomp(),
		h.Nft(ctx, o),
		h.Interpreters(),
		h.DataDir(o),
		h.Disk(o),
		h.Swap(),
		h.Port(o),
	}
}

func ok(name, format string, args ...any) Result {
	return Result{Name: name, Status: OK, Message: fmt.Sprintf(format, args...)}
}

func warn(name, msg, fix string) Result {
	return Result{Name: name, Status: Warn, Message: msg, Fix: fix}
}

func fail(name, msg, fix string) Result {
	return Result{Name: name, Status: Fail, Message: msg, Fix: fix}
}

// path is p (absolute) inside the host's Root.
func (h Host) path(p string) string {
	if h.RootDir == "" || h.RootDir == "/" {
		return p
	}
	return filepath.Join(h.RootDir, p)
}

// bytesText renders n bytes in binary units, e.g. "1.3 GiB".
func bytesText(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
