package sandbox

import (
	"fmt"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// listenInNetns brings up lo in the network namespace of the process (by
// pidfd, or pid when pidfd < 0), runs inside (when not nil: the egress
// network's eth0 setup, in the same trip) and listens on addr there. Only
// processes in that namespace can connect; the listener itself is served
// from Owl.
//
// The work runs on a fresh goroutine locked to its OS thread: setns
// changes the thread, not the process. If the thread cannot be switched
// back, the goroutine exits still locked and the runtime discards the
// thread instead of returning it to the pool in the wrong namespace.
func listenInNetns(pidfd, pid int, addr string, inside func() error) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ln, restored, err := listenInNetnsLocked(pidfd, pid, addr, inside)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

func listenInNetnsLocked(pidfd, pid int, addr string, inside func() error) (ln net.Listener, restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, true, fmt.Errorf("opening own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := enterNetns(pidfd, pid); err != nil {
		return nil, true, err
	}
	ln, err = listenLoopback(addr)
	if err == nil && inside != nil {
		if err = inside(); err != nil {
			ln.Close()
			ln = nil
		}
	}
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, false, fmt.Errorf("returning to the original network namespace (thread discarded): %w", rerr)
	}
	return ln, true, err
}

// enterNetns switches the calling thread into the process's network
// namespace; the pidfd form (Linux 5.8+) cannot hit a recycled pid.
func enterNetns(pidfd, pid int) error {
	if pidfd >= 0 {
		err := unix.Setns(pidfd, unix.CLONE_NEWNET)
		if err == nil {
			return nil
		}
		if err != unix.EINVAL {
			return fmt.Errorf("entering the sandbox network namespace: %w", err)
		}
	}
	p := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the sandbox network namespace: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the sandbox network namespace: %w", err)
	}
	return nil
}

// listenLoopback brings lo up in the current thread's network namespace
// (a new one has lo down and no addresses) and listens on addr.
func listenLoopback(addr string) (net.Listener, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bringing up lo: socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return nil, fmt.Errorf("bringing up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("bringing up lo: reading flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return nil, fmt.Errorf("bringing up lo: %w", err)
	}
	// The socket is created by this thread, hence in this namespace.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s for the Runtime API: %w", addr, err)
	}
	return ln, nil
}
