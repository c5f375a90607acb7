package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// File-type bits of a cpio entry's mode (as in stat(2)).
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// CPIOWriter writes a cpio archive in the "newc" format (magic 070701), the
// one the kernel unpacks as an initramfs. Directories must be added before
// what they hold; every entry is owned by root with mtime 0.
type CPIOWriter struct {
	w      *bufio.Writer
	ino    uint32
	off    int64
	names  map[string]bool
	closed bool
}

// NewCPIOWriter returns a writer of a newc archive to w.
func NewCPIOWriter(w io.Writer) *CPIOWriter {
	return &CPIOWriter{w: bufio.NewWriter(w), ino: 1, names: map[string]bool{}}
}

// AddDir adds a directory with permission bits perm.
func (c *CPIOWriter) AddDir(name string, perm uint32) error {
	return c.add(name, modeDir|perm&0o7777, 0, 0, nil)
}

// AddFile adds a regular file with permission bits perm.
func (c *CPIOWriter) AddFile(name string, perm uint32, data []byte) error {
	return c.add(name, modeReg|perm&0o7777, 0, 0, data)
}

// AddCharDev adds a character device node (e.g. /dev/console, 5:1).
func (c *CPIOWriter) AddCharDev(name string, perm uint32, major, minor uint32) error {
	return c.add(name, modeChar|perm&0o7777, major, minor, nil)
}

// Close writes the trailer and flushes; it does not close the underlying
// writer.
func (c *CPIOWriter) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	if err := c.writeEntry("TRAILER!!!", 0, 0, 0, 0, 1, nil); err != nil {
		return err
	}
	return c.w.Flush()
}

func (c *CPIOWriter) add(name string, mode, rmajor, rminor uint32, data []byte) error {
	if c.closed {
		return fmt.Errorf("cpio: adding %q after Close", name)
	}
	clean := strings.TrimPrefix(path.Clean("/"+name), "/")
	if clean == "" || clean == "TRAILER!!!" {
		return fmt.Errorf("cpio: invalid entry name %q", name)
	}
	if c.names[clean] {
		return fmt.Errorf("cpio: duplicate entry %q", clean)
	}
	if dir := path.Dir(clean); dir != "." && !c.names[dir] {
		return fmt.Errorf("cpio: entry %q before its directory %q", clean, dir)
	}
	c.names[clean] = true
	nlink := uint32(1)
	if mode&modeDir != 0 {
		nlink = 2
	}
	c.ino++
	return c.writeEntry(clean, c.ino, mode, rmajor, rminor, nlink, data)
}

func (c *CPIOWriter) writeEntry(name string, ino, mode, rmajor, rminor, nlink uint32, data []byte) error {
	// The 13 fields after the magic, 8 hex digits each: ino, mode, uid, gid,
	// nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
	// namesize (with the NUL), check (0 for newc).
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := c.w.WriteString(hdr); err != nil {
		return fmt.Errorf("cpio: writing %q: %w", name, err)
	}
	c.off += int64(len(hdr))
	if err := c.write([]byte(name + "\x00")); err != nil {
		return fmt.Errorf("cpio: writing %q: %w", name, err)
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return fmt.Errorf("cpio: writing %q: %w", name, err)
	}
	return c.pad()
}

func (c *CPIOWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

// pad aligns the stream to 4 bytes, as newc requires after the name and
// after the data.
func (c *CPIOWriter) pad() error {
	if n := (4 - c.off%4) % 4; n > 0 {
		return c.write(make([]byte, n))
	}
	return nil
}
