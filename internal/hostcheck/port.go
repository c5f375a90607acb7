package hostcheck

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Port checks that the API's address can be listened on: free, allowed,
// and an address of this host. When it is in use it names the process
// listening there if /proc tells (it does for root).
func (h Host) Port(o Options) Result {
	const name = "api port"
	const other = "choose another with --addr (OWL_ADDR)"
	_, portText, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return fail(name, fmt.Sprintf("address %q: want HOST:PORT: %v", o.Addr, err), "set --addr (OWL_ADDR) like 127.0.0.1:8790")
	}
	if h.Listen == nil {
		return ok(name, "%s not checked", o.Addr)
	}
	err = h.Listen(o.Addr)
	switch {
	case err == nil:
		return ok(name, "%s is free", o.Addr)
	case errors.Is(err, syscall.EADDRINUSE):
		by := ""
		if port, perr := strconv.Atoi(portText); perr == nil {
			if who := h.listener(port); who != "" {
				by = " by " + who
			}
		}
		return fail(name, fmt.Sprintf("%s is in use%s", o.Addr, by),
			"stop what listens there (another owl serve?), or "+other)
	case errors.Is(err, syscall.EACCES):
		return fail(name, fmt.Sprintf("%s: permission denied (a port below 1024 needs root)", o.Addr),
			"run owl serve as root, or "+other)
	}
	return fail(name, fmt.Sprintf("cannot listen on %s: %v", o.Addr, err),
		"use an address of this host, or "+other)
}

// listener names the process listening on TCP port ("owl (pid 42)"), or
// "" when /proc does not tell.
func (h Host) listener(port int) string {
	pid := h.listenerPID(port)
	if pid == 0 {
		return ""
	}
	comm, _ := os.ReadFile(h.path(fmt.Sprintf("/proc/%d/comm", pid)))
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
}

// ListenerPID is the process listening on TCP port of this host, or 0
// when /proc does not tell (owl bench reads the server's CPU with it).
func ListenerPID(port int) int { return Host{}.listenerPID(port) }

// listenerPID finds the socket's inode in /proc/net/tcp{,6}, then the
// process holding it among /proc/*/fd.
func (h Host) listenerPID(port int) int {
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = listenInode(h.path(f), port); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	target := "socket:[" + inode + "]"
	procs, _ := filepath.Glob(h.path("/proc/[0-9]*"))
	for _, p := range procs {
		fds, _ := os.ReadDir(filepath.Join(p, "fd"))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(p, "fd", fd.Name())); err == nil && l == target {
				pid, _ := strconv.Atoi(filepath.Base(p))
				return pid
			}
		}
	}
	return 0
}

// listenInode finds the inode of a listening socket on port in a
// /proc/net/tcp-format file.
func listenInode(file string, port int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	want := fmt.Sprintf(":%04X", port)
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if i == 0 || len(f) < 10 || f[3] != "0A" || !strings.HasSuffix(f[1], want) {
			continue
		}
		return f[9]
	}
	return ""
}
