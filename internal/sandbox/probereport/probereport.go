// Package probereport is what the sandbox tests' probe program
// (internal/sandbox/testdata/probe) reports from inside a sandbox, as JSON
// the tests decode: one definition for the program that writes it and the
// tests that read it. Only they import it.
package probereport

// Facts is what a process in a sandbox sees of its identity, processes,
// filesystem, devices and network.
type Facts struct {
	UID, GID, EUID, EGID int
	Groups               []int
	Pid, PPid            int
	Hostname             string
	Cwd                  string
	Env                  []string
	Procs                []int
	WriteErrs            map[string]string
	TmpBytes             uint64 // what /tmp can still take (statfs f_bavail)
	TmpMount             string // /tmp's filesystem type and mount options (mountinfo)
	TmpMode              uint32 // /tmp's permission bits, sticky bit included
	Interfaces           []string
	LoUp                 bool
	HostDial             string
	DevNull              string
	Urandom              string
	FDs                  []string
	CapEff               string
	RootEntries          []string
	Mountpoints          []string
}

// Hardening is what the privilege and filesystem hardening of a sandbox
// leaves a process.
type Hardening struct {
	Status   map[string]string // Cap*, NoNewPrivs, Seccomp from /proc/self/status
	Rlimits  map[string][2]uint64
	Syscalls map[string]string // errno of each refused attempt ("" = it worked)
	Etc      []string
	Dev      []string
	Passwd   string
	Reads    map[string]string // path → "n bytes" or the error
	Writes   map[string]string // path → error ("" = it worked)
	Sys      string            // stat /sys
}
