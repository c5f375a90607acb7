package sandbox

import (
	"errors"
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
func listenInNetns(pidfd, pid int, addr string, inside func() error) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(func() error { return enterNetns(pidfd, pid) }, func() error {
		var err error
		if ln, err = listenLoopback(addr); err != nil {
			return err
		}
		if inside != nil {
			return inside()
		}
		return nil
	})
	if err != nil && ln != nil {
		ln.Close()
		return nil, err
	}
	return ln, err
}

// InNetnsAt runs fn inside the network namespace that the file at path
// stands for (/run/netns/<name>, /proc/<pid>/ns/net), as inNetns does.
func InNetnsAt(path string, fn func() error) error {
	return inNetns(func() error { return setnsPath(path) }, fn)
}

// inNetns runs fn on a fresh goroutine locked to its OS thread, which
// enter has moved into another network namespace, then moves the thread
// back. setns changes the thread, not the process. If the thread cannot
// be moved back, the goroutine exits still locked and the runtime
// discards the thread instead of returning it to the pool in the wrong
// namespace.
func inNetns(enter, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := inNetnsLocked(enter, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

func inNetnsLocked(enter, fn func() error) (restored bool, err error) {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, fmt.Errorf("opening own network namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := enter(); err != nil {
		return true, err
	}
	err = fn()
	if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
		return false, errors.Join(err, fmt.Errorf("returning to the original network namespace (thread discarded): %w", rerr))
	}
	return true, err
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
	if err := setnsPath("/proc/" + strconv.Itoa(pid) + "/ns/net"); err != nil {
		return fmt.Errorf("entering the sandbox network namespace: %w", err)
	}
	return nil
}

// setnsPath moves the calling thread into the network namespace that the
// file at path stands for.
func setnsPath(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Setns(fd, unix.CLONE_NEWNET)
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
