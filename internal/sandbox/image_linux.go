package sandbox

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The two roots a sandbox can have. The usual one is a fresh read-only
// tmpfs holding read-only binds of the host's /usr (and /bin, /lib...) and
// Owl's prepared /etc. A container image's (Spec.Image) is the image's
// unpacked file system, bound read-only: its /usr, its /etc and its
// /var/task are the function's. Owl binds its own passwd, group, hosts,
// hostname, nsswitch.conf and resolv.conf over the image's (imageEtcFiles),
// so the function's identity and name resolution are the same as in any
// sandbox; /proc, /dev, /tmp, the identity, seccomp and the cgroup are
// unchanged.
//
// The images package prepares the tree: the mount points below are real
// directories and the /etc files regular files, never symlinks, which a
// mount would follow out of the tree. The init checks that again before
// mounting on them.

// imageEtcFiles are bound from the prepared /etc over an image's; the
// images package (images.EtcFiles) makes them regular files.
var imageEtcFiles = [...]string{"passwd", "group", "hosts", "hostname", "nsswitch.conf", "resolv.conf"}

// imageMountDirs are mounted on inside an image's root (its /var/task
// and /opt are its own: nothing is mounted there).
var imageMountDirs = [...]string{"etc", "tmp", "proc", "dev"}

// mountTmpfsRoot builds the usual root on cfg.Root: a tmpfs with the
// host's runtime directories, the mount points and Owl's /etc.
func mountTmpfsRoot(cfg *initConfig) error {
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, rootTmpfsOpts); err != nil {
		return fmt.Errorf("mounting root tmpfs on %s: %w", root, err)
	}
	for _, name := range hostRuntimeDirs {
		if err := addHostDir(root, name); err != nil {
			return err
		}
	}
	for _, d := range []string{"etc", "var", "var/task", "opt", "tmp", "proc", "dev"} {
		if err := unix.Mkdir(root+"/"+d, 0o755); err != nil {
			return fmt.Errorf("creating /%s: %w", d, err)
		}
	}
	if err := bindReadOnly(cfg.EtcDir, root+"/etc"); err != nil {
		return fmt.Errorf("mounting /etc from %s: %w", cfg.EtcDir, err)
	}
	return nil
}

// mountImageRoot binds the image's tree on cfg.Root (made read-only with
// the rest of the root after the pivot) and Owl's /etc files over the
// image's.
func mountImageRoot(cfg *initConfig) error {
	root := cfg.Root
	if err := unix.Mount(cfg.Image, root, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mounting image %s as the root: %w", cfg.Image, err)
	}
	for _, d := range imageMountDirs {
		if err := checkKind(root+"/"+d, unix.S_IFDIR); err != nil {
			return fmt.Errorf("image root: /%s: %w", d, err)
		}
	}
	for _, f := range imageEtcFiles {
		dst := root + "/etc/" + f
		if err := checkKind(dst, unix.S_IFREG); err != nil {
			return fmt.Errorf("image root: /etc/%s: %w", f, err)
		}
		src := cfg.EtcDir + "/" + f
		if err := unix.Access(src, unix.F_OK); err == unix.ENOENT {
			continue // the host has none (resolv.conf): the image's empty file
		}
		if err := bindReadOnly(src, dst); err != nil {
			return fmt.Errorf("mounting /etc/%s: %w", f, err)
		}
	}
	return nil
}

// checkKind fails unless p is of the file type kind (S_IFDIR, S_IFREG),
// not following a final symlink.
func checkKind(p string, kind uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != kind {
		return fmt.Errorf("not a plain %s (mode %#o): the image was not prepared", kindName(kind), st.Mode)
	}
	return nil
}

func kindName(kind uint32) string {
	if kind == unix.S_IFDIR {
		return "directory"
	}
	return "file"
}
