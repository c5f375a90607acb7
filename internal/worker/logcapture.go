package worker

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxPendingLog bounds the log bytes buffered between two takes, so a
// runtime that floods its output cannot grow Owl's memory without end.
const maxPendingLog = 1 << 20

// logCapture reads a sandbox's output pipe line by line. A background
// goroutine drains the pipe whenever it is readable; take drains it
// synchronously too, so every line the runtime wrote before answering an
// invocation is attributed to that invocation.
type logCapture struct {
	rc   syscall.RawConn
	file *os.File
	done chan struct{}

	mu        sync.Mutex // guards the fields below and reads of the pipe
	partial   []byte
	lines     []string
	pending   int
	truncated bool
	eof       bool
}

func newLogCapture(f *os.File) (*logCapture, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &logCapture{rc: rc, file: f, done: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *logCapture) run() {
	defer close(c.done)
	_ = c.rc.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.drainLocked(int(fd))
	})
}

// drainLocked reads until the pipe is empty; it reports whether the pipe
// is finished (EOF or error).
func (c *logCapture) drainLocked(fd int) bool {
	if c.eof {
		return true
	}
	var buf [32 << 10]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if n > 0 {
			c.appendLocked(buf[:n])
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			c.eof = true
			return true
		}
	}
}

func (c *logCapture) appendLocked(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			if len(c.partial) > 256<<10 { // an endless line: cut it
				c.pushLocked(string(c.partial))
				c.partial = c.partial[:0]
			}
			return
		}
		line := b[:i]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, line...)
			c.pushLocked(string(c.partial))
			c.partial = c.partial[:0]
		} else {
			c.pushLocked(string(line))
		}
		b = b[i+1:]
	}
}

func (c *logCapture) pushLocked(line string) {
	if c.pending+len(line) > maxPendingLog {
		c.truncated = true
		return
	}
	c.pending += len(line)
	c.lines = append(c.lines, line)
}

// take returns the lines written since the last take, including an
// unterminated last line, after draining what the pipe holds now.
func (c *logCapture) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.rc.Control(func(fd uintptr) { c.drainLocked(int(fd)) })
	if len(c.partial) > 0 {
		c.pushLocked(string(c.partial))
		c.partial = c.partial[:0]
	}
	lines := c.lines
	if c.truncated {
		lines = append(lines, "[owl] log output truncated: more than 1 MiB between two invocations")
	}
	c.lines, c.pending, c.truncated = nil, 0, false
	return lines
}

// close stops the reader and waits for it.
func (c *logCapture) close() {
	_ = c.file.Close()
	<-c.done
}
