package worker

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultLogLimitBytes is Config.LogLimitBytes when unset: the most log
// output of one invocation that Owl keeps.
const DefaultLogLimitBytes = 1 << 20

// maxLineBytes cuts an endless line into pieces of this size.
const maxLineBytes = 256 << 10

// logCapture reads a sandbox's output pipe line by line. A background
// goroutine drains the pipe whenever it is readable; take drains it
// synchronously too, so every line the runtime wrote before answering an
// invocation is attributed to that invocation. Between stream and take,
// the background goroutine also hands each complete line to the live
// sink as it is read, so a log follower sees it while the invocation
// runs.
//
// What one invocation (one take) writes beyond limit bytes is read and
// dropped, and take adds one marker line instead: the pipe is always
// drained, so a function flooding its output keeps running at full speed
// while Owl's memory and log stream stay bounded.
type logCapture struct {
	rc    syscall.RawConn
	file  *os.File
	done  chan struct{}
	limit int

	mu      sync.Mutex // guards the fields below and reads of the pipe
	partial []byte
	lines   []string
	pending int  // bytes of lines (and partial) kept since the last take
	dropped bool // output was dropped since the last take
	eof     bool
	// live receives lines[sent:] as they come, from stream to take.
	live func(lines []string)
	sent int
	// ext are the lines among lines that external extensions wrote
	// (marked by the launcher: extensionMarker), without their marker.
	ext []string
}

// newLogCapture starts draining f, keeping at most limit bytes per take.
func newLogCapture(f *os.File, limit int) (*logCapture, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &logCapture{rc: rc, file: f, done: make(chan struct{}), limit: limit}
	go c.run()
	return c, nil
}

func (c *logCapture) run() {
	defer close(c.done)
	_ = c.rc.Read(func(fd uintptr) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		finished := c.drainLocked(int(fd))
		c.sendLocked()
		return finished
	})
}

// stream hands live the lines kept since the last take, then each line as
// it is read, until the next take.
func (c *logCapture) stream(live func(lines []string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.rc.Control(func(fd uintptr) { c.drainLocked(int(fd)) })
	c.live = live
	c.sendLocked()
}

func (c *logCapture) sendLocked() {
	if c.live != nil && len(c.lines) > c.sent {
		c.live(c.lines[c.sent:])
		c.sent = len(c.lines)
	}
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
		if c.dropped {
			return // over the limit until the next take: discard unread
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if c.pending+len(c.partial)+len(b) > c.limit {
				c.dropLocked()
				return
			}
			c.partial = append(c.partial, b...)
			if len(c.partial) > maxLineBytes { // an endless line: cut it
				c.pushLocked(c.partial)
			}
			return
		}
		if len(c.partial) > 0 {
			c.partial = append(c.partial, b[:i]...)
			c.pushLocked(c.partial)
		} else {
			c.pushLocked(b[:i])
		}
		b = b[i+1:]
	}
}

// pushLocked keeps a complete line, or starts dropping when it would pass
// the limit; it empties partial either way.
func (c *logCapture) pushLocked(line []byte) {
	if c.pending+len(line)+1 > c.limit {
		c.dropLocked()
		return
	}
	c.pending += len(line) + 1
	ext := len(line) > 0 && line[0] == extensionMarker
	if ext {
		line = line[1:]
	}
	l := string(line)
	c.lines = append(c.lines, l)
	if ext {
		c.ext = append(c.ext, l)
	}
	c.partial = c.partial[:0]
}

func (c *logCapture) dropLocked() {
	c.dropped = true
	c.partial = c.partial[:0]
}

// take returns the lines written since the last take, including an
// unterminated last line, after draining what the pipe holds now; unsent
// is the part of them stream's sink has not had (all of them without a
// stream), the truncation marker included.
func (c *logCapture) take() (lines, unsent []string) {
	lines, unsent, _ = c.takeSplit()
	return lines, unsent
}

// takeSplit is take, and also which of the lines (in their order) are
// extensions' (extensionLines splits them).
func (c *logCapture) takeSplit() (lines, unsent, ext []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.rc.Control(func(fd uintptr) { c.drainLocked(int(fd)) })
	if len(c.partial) > 0 && !c.dropped {
		c.pushLocked(c.partial)
	}
	lines = c.lines
	if c.dropped {
		lines = append(lines, truncationMarker(c.limit))
	}
	unsent = lines[c.sent:]
	ext = c.ext
	c.lines, c.pending, c.dropped, c.live, c.sent, c.ext = nil, 0, false, nil, 0, nil
	c.partial = c.partial[:0]
	return lines, unsent, ext
}

// truncationMarker is the line that replaces the output past the limit.
func truncationMarker(limit int) string {
	return "[owl] log output truncated: this invocation wrote more than " + strconv.Itoa(limit) + " bytes"
}

// close stops the reader and waits for it.
func (c *logCapture) close() {
	_ = c.file.Close()
	<-c.done
}
