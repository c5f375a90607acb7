package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A sandbox's /tmp is disk, not memory, as on Lambda: an ext4 filesystem
// of the function's ephemeral storage size on a loop device, over a sparse
// image file under <RootDir>/tmpdisks.
//
// A tmpDisk is made ahead of need (a copy of a template image that mkfs
// made once per size, a loop device and a mount: about a millisecond of
// CPU, more than the rest of a cold start's setup) and kept as a
// *detached* mount (fsmount):
// an fd that nothing in any mount namespace can reach yet. The image file
// is unlinked as soon as the loop device holds it, and the loop device is
// set to clear itself when its last user goes (LO_FLAGS_AUTOCLEAR). So
// what one /tmp is made of lives exactly as long as its mount:
//
//   - a cold sandbox gets the fd with its config (SCM_RIGHTS) and its init
//     moves the mount onto /tmp inside its own mount namespace;
//   - a pre-warmed sandbox's /tmp slot gets it from the host at Specialize
//     (propagated into the sandbox like its code);
//   - when the sandbox's mount namespace dies and Owl has closed its fd,
//     the filesystem is unmounted, the loop device detaches itself and
//     the unlinked image's blocks are freed. A crash of Owl leaves nothing
//     either: its fds close, its sandboxes die with it (parent-death
//     signal). Only an image caught between its creation and its unlink,
//     and the templates, can remain in a crashed Manager's directory
//     (<RootDir>/tmpdisks/<nonce>); CleanupStale removes it.
//
// Every /tmp is a new filesystem: nothing written by one function is ever
// seen by another, whatever reuses what.

// tmpDisksDir is the directory of the images, under Config.RootDir: a
// directory per Manager in it.
const tmpDisksDir = "tmpdisks"

// mkfsArgs make the image: no journal (a /tmp's contents do not outlive
// the sandbox, so there is nothing to recover after a crash; it also
// leaves more of the size to the function), no blocks reserved for root
// (the function is not root), no reserved GDT blocks (never resized), one
// inode per 16 KB (ext4's default above 512 MB, fixed here for every
// size), 4 KB blocks, and no discard of a new sparse file.
var mkfsArgs = []string{"-q", "-F", "-t", "ext4", "-O", "^has_journal,^resize_inode", "-m", "0",
	"-b", "4096", "-i", "16384", "-E", "nodiscard,root_owner=0:0"}

// findMkfs finds mkfs.ext4: on the PATH, else in the sbin directories a
// user's PATH often lacks.
func findMkfs() (string, error) {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("every sandbox's /tmp is an ext4 filesystem, and mkfs.ext4 is not installed (Debian: apt install e2fsprogs)")
}

// tmpDisk is a /tmp ready to attach, or attached: a mount fd of its ext4
// filesystem.
type tmpDisk struct {
	mnt *os.File // from fsmount (detached until moved); closing it lets the filesystem go once unmounted
	mb  int
	dev uint64 // the loop device's number
	img string // the (unlinked) image the loop device holds
}

// newTmpDisk makes a filesystem in a sparse image under dir, a copy of
// template (an image made by makeTemplate), and returns it as a detached
// mount (nosuid, nodev, root mode 1777, empty).
func newTmpDisk(dir, template string, mb int) (_ *tmpDisk, err error) {
	name := make([]byte, 8)
	rand.Read(name)
	img := filepath.Join(dir, hex.EncodeToString(name)+".img")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating /tmp image: %w", err)
	}
	defer f.Close()
	defer os.Remove(img) // the loop device holds it open from here on
	if err := copySparse(f, template); err != nil {
		return nil, fmt.Errorf("copying /tmp image: %w", err)
	}
	loop, err := attachLoop(f)
	if err != nil {
		return nil, err
	}
	// Closing it leaves the loop device to the mount (autoclear).
	defer loop.Close()
	mnt, err := mountDetached(loop.Name())
	if err != nil {
		return nil, err
	}
	d := &tmpDisk{mnt: mnt, mb: mb, img: img}
	var st unix.Stat_t
	if err := unix.Fstat(int(loop.Fd()), &st); err == nil {
		d.dev = st.Rdev
	}
	if err := d.prepareRoot(); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

// makeTemplate makes the image every /tmp of mb MiB is a copy of, under
// dir: running mkfs.ext4 costs ~3 ms of CPU and a process; copying the few
// hundred KB it writes costs a tenth of that (copy_file_range, holes kept).
// The copies share the filesystem's UUID, which ext4 does not mind.
func makeTemplate(dir, mkfs string, mb int) (string, error) {
	img := filepath.Join(dir, "template-"+strconv.Itoa(mb)+".img")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("creating /tmp template: %w", err)
	}
	err = f.Truncate(imageBytes(mb))
	f.Close()
	if err != nil {
		return "", fmt.Errorf("sizing /tmp template: %w", err)
	}
	if out, err := exec.Command(mkfs, append(mkfsArgs, img)...).CombinedOutput(); err != nil {
		os.Remove(img)
		return "", fmt.Errorf("making /tmp filesystem (mkfs.ext4, from e2fsprogs): %w: %s", err, out)
	}
	return img, nil
}

// copySparse makes dst (new, empty) a copy of the file src, its holes left
// holes: only what mkfs wrote takes space.
func copySparse(dst *os.File, src string) error {
	sf, err := os.Open(src)
	if err != nil {
		return err
	}
	defer sf.Close()
	fi, err := sf.Stat()
	if err != nil {
		return err
	}
	if err := dst.Truncate(fi.Size()); err != nil {
		return err
	}
	sfd, dfd := int(sf.Fd()), int(dst.Fd())
	for off := int64(0); off < fi.Size(); {
		start, err := unix.Seek(sfd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			return nil // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("finding data in %s: %w", src, err)
		}
		end, err := unix.Seek(sfd, start, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("finding a hole in %s: %w", src, err)
		}
		for start < end {
			roff, woff := start, start
			n, err := unix.CopyFileRange(sfd, &roff, dfd, &woff, int(end-start), 0)
			if err != nil {
				return fmt.Errorf("copying %s: %w", src, err)
			}
			if n == 0 {
				return fmt.Errorf("copying %s: %w", src, io.ErrUnexpectedEOF)
			}
			start += int64(n)
		}
		off = end
	}
	return nil
}

// imageBytes sizes the image of an mb MiB /tmp so that the function can
// write mb MiB of files and not much more: ext4 takes 1/64 of it for inode
// tables (256 bytes per 16 KB), and keeps 2 % of it, at most 16 MiB, from
// ordinary writes (reserved clusters, ext4_calculate_resv_clusters).
func imageBytes(mb int) int64 {
	b := int64(mb) << 20
	return b + b/63 + min(b/49, 16<<20) + 1<<20 + b>>12
}

// attachLoop binds f to a free loop device that detaches itself on its
// last close, with direct I/O (no second copy of /tmp's pages in the
// image file's page cache). It returns the device, open.
func attachLoop(f *os.File) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// The loop module is not loaded, and nothing (systemd's static
		// nodes) loads it on open: a minimal host, or the v2 test guest.
		if out, merr := exec.Command("/sbin/modprobe", "loop").CombinedOutput(); merr != nil {
			return nil, fmt.Errorf("opening loop control: %w (modprobe loop: %v: %s)", err, merr, out)
		}
		ctl, err = os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("opening loop control: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
	// Another process may take the free device between the two calls.
	for range 16 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("finding a free loop device: %w", err)
		}
		dev, err := os.OpenFile("/dev/loop"+strconv.Itoa(n), os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening loop device: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("configuring %s: %w", dev.Name(), err)
		}
	}
	return nil, errors.New("configuring a loop device: every free one was taken first")
}

// mountDetached mounts the ext4 filesystem of dev as a detached mount,
// nosuid and nodev.
func mountDetached(dev string) (*os.File, error) {
	fsfd, err := unix.Fsopen("ext4", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fsopen ext4: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return nil, fmt.Errorf("mounting %s: source: %w", dev, err)
	}
	// The image is a new sparse file, whose inode tables read as zeros
	// already: no kernel thread to write zeros over them (ext4lazyinit),
	// which would cost I/O and make the image take megabytes at once.
	if err := unix.FsconfigSetFlag(fsfd, "noinit_itable"); err != nil {
		return nil, fmt.Errorf("mounting %s: noinit_itable: %w", dev, err)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("mounting %s: %w", dev, err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("fsmount %s: %w", dev, err)
	}
	return os.NewFile(uintptr(mfd), "tmp-mount"), nil
}

// prepareRoot gives the filesystem's root /tmp's mode (1777) and removes
// mkfs's lost+found, so the function finds an empty /tmp as on Lambda.
func (d *tmpDisk) prepareRoot() error {
	fd, err := unix.Openat(int(d.mnt.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /tmp's root: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o1777); err != nil {
		return fmt.Errorf("setting /tmp's mode: %w", err)
	}
	if err := unix.Unlinkat(fd, "lost+found", unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("removing /tmp's lost+found: %w", err)
	}
	return nil
}

// unwrittenBytes is what the function may still write to this /tmp: space
// the image file may yet take from the data dir's disk.
func (d *tmpDisk) unwrittenBytes() int64 {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(d.mnt.Fd()), &st); err != nil {
		return int64(d.mb) << 20 // cannot tell: all of it
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// close drops Owl's reference: a detached disk goes at once, an attached
// one when its last mount does. It waits (up to detachWait) until the loop
// device let go of the image, which the kernel does after the last
// unmount, asynchronously: until then the image's blocks are held, and the
// filesystem of the data dir cannot be unmounted.
func (d *tmpDisk) close() {
	d.mnt.Close()
	if d.dev == 0 {
		return
	}
	backing := fmt.Sprintf("/sys/dev/block/%d:%d/loop/backing_file", unix.Major(d.dev), unix.Minor(d.dev))
	for deadline := time.Now().Add(detachWait); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(backing)
		if err != nil || strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)") != d.img {
			return // detached (ENOENT, ENODEV while clearing), or bound to another image since
		}
	}
}

// detachWait bounds tmpDisk.close's wait for its loop device: a disk
// still mounted in a sandbox that is not yet gone detaches later, alone.
const detachWait = 10 * time.Second

// tmpDisks makes the /tmp disks of a Manager and keeps some of the default
// size ready (Config.TmpSpares), refilled in the background like the spare
// inits; other sizes are made when asked for.
type tmpDisks struct {
	dir       string
	mkfs      string // mkfs.ext4's path
	tmplMu    sync.Mutex
	templates map[int]string // guarded by tmplMu; size in MiB → image made by makeTemplate
	log       *slog.Logger
	ready     chan *tmpDisk // DefaultTmpMB; only refill sends
	kick      chan struct{} // cap 1
	stop      chan struct{}
	done      chan struct{}

	mu   sync.Mutex
	live map[*tmpDisk]bool // guarded by mu; handed out and not yet released

	closing sync.WaitGroup // released disks being closed
}

// newTmpDisks makes dir, this Manager's own (a crashed run's are
// removed by cleanupStaleTmp), and starts keeping spares of them ready.
func newTmpDisks(dir, mkfs string, spares int, log *slog.Logger) (*tmpDisks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	t := &tmpDisks{dir: dir, mkfs: mkfs, templates: map[int]string{}, log: log, ready: make(chan *tmpDisk, spares), kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), live: map[*tmpDisk]bool{}}
	if spares > 0 {
		t.kick <- struct{}{}
		go t.refill()
	} else {
		close(t.done)
	}
	return t, nil
}

// make makes a /tmp of mb MiB, from its size's template (made first, once).
func (t *tmpDisks) make(mb int) (*tmpDisk, error) {
	t.tmplMu.Lock()
	tmpl, ok := t.templates[mb]
	if !ok {
		var err error
		if tmpl, err = makeTemplate(t.dir, t.mkfs, mb); err != nil {
			t.tmplMu.Unlock()
			return nil, err
		}
		t.templates[mb] = tmpl
	}
	t.tmplMu.Unlock()
	return newTmpDisk(t.dir, tmpl, mb)
}

// take returns a new, empty /tmp of mb MiB: a ready one of the default
// size, else one made now.
func (t *tmpDisks) take(mb int) (*tmpDisk, error) {
	var d *tmpDisk
	if mb == DefaultTmpMB {
		select {
		case d = <-t.ready:
		default:
		}
	}
	if d == nil {
		var err error
		if d, err = t.make(mb); err != nil {
			return nil, err
		}
	}
	t.mu.Lock()
	t.live[d] = true
	t.mu.Unlock()
	return d, nil
}

// tmpRefillDelay is how long after a sandbox is up the /tmp disk it took
// is made again: past its runtime's start and first invocation (a cold
// start's second half), with which the ~1 ms of CPU and the I/O of
// making one would compete on a small machine. Cold starts faster than
// that use the spares, then make their disk themselves.
const tmpRefillDelay = 50 * time.Millisecond

// refillSoon has the spares made again after a take, tmpRefillDelay from
// now.
func (t *tmpDisks) refillSoon() {
	time.AfterFunc(tmpRefillDelay, func() {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	})
}

// release closes a disk from take, in the background: once its sandbox's
// mount namespace is gone, the last close unmounts the filesystem and
// clears the loop device (a few milliseconds, RCU grace periods among
// them), which the sandbox's Destroy need not wait for. close waits.
func (t *tmpDisks) release(d *tmpDisk) {
	t.mu.Lock()
	delete(t.live, d)
	t.mu.Unlock()
	t.closing.Go(d.close)
}

// unwrittenBytes sums what the live /tmp disks may still write.
func (t *tmpDisks) unwrittenBytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for d := range t.live {
		n += d.unwrittenBytes()
	}
	return n
}

func (t *tmpDisks) refill() {
	defer close(t.done)
	keepReady(t.ready, t.kick, t.stop, func() (*tmpDisk, error) {
		return t.make(DefaultTmpMB)
	}, (*tmpDisk).close, t.log, "making a spare /tmp disk")
}

// close stops the refill and closes the spare disks; live ones belong to
// their sandboxes. The templates and the directory are removed.
func (t *tmpDisks) close() error {
	close(t.stop)
	<-t.done
	for len(t.ready) > 0 {
		(<-t.ready).close()
	}
	t.closing.Wait()
	t.tmplMu.Lock()
	for mb, tmpl := range t.templates {
		if err := os.Remove(tmpl); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.log.Warn("removing a /tmp template", "path", tmpl, "err", err)
		}
		delete(t.templates, mb)
	}
	t.tmplMu.Unlock()
	if err := os.Remove(t.dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", t.dir, err)
	}
	// The parent too, unless another Manager's directory is in it.
	if err := os.Remove(filepath.Dir(t.dir)); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		return fmt.Errorf("removing %s: %w", filepath.Dir(t.dir), err)
	}
	return nil
}

// cleanupStaleTmp removes the /tmp directories under root (images and
// templates) of Managers other than the one whose directory is mine: a
// crashed run's. Their images' loop devices went with that run.
func cleanupStaleTmp(root, mine string) (int, error) {
	return removeEntries(root, func(name string) bool { return filepath.Join(root, name) == mine }, os.RemoveAll)
}
