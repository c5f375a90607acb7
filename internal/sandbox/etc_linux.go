package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A sandbox's /etc is not the host's: it is a directory the Manager builds
// once per function identity (uid:gid) under Config.RootDir, bound
// read-only at /etc. It holds only what runtimes and their libraries read
// — the dynamic loader's cache, CA certificates, name-service and
// time-zone files, the interpreter alternatives — copied from the host, and
// passwd, group, hosts, hostname and nsswitch.conf written for the sandbox.
// So /etc/shadow, /etc/gshadow, SSH host keys, package-manager credentials
// (npmrc, pip.conf), machine-id and the like are absent.
//
// It is a copy taken when the Manager first needs it: a host change to, say,
// resolv.conf or the CA bundle reaches sandboxes at Owl's next start. One
// bind mount of a prepared directory is also cheaper per sandbox than a
// bind per file.

// etcAllowed are the host /etc entries copied (files, directories and
// symlinks; missing ones are skipped). python3* directories are added too.
var etcAllowed = []string{
	"resolv.conf", "host.conf", "gai.conf", "networks", "protocols", "services",
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d",
	"localtime", "timezone", "os-release",
	"ca-certificates.conf", "ca-certificates", "ssl/certs", "ssl/openssl.cnf", "pki/tls/certs", "pki/ca-trust",
	"mime.types", "alternatives",
}

// maxEtcFile bounds one copied file (the CA bundle is the largest, ~200 KB).
const maxEtcFile = 8 << 20

// sandboxUser is the function user's name, like Lambda's.
const sandboxUser = "sbx_user1051"

// etcDir returns the /etc directory for uid:gid, building it on first use.
func (m *Manager) etcDir(uid, gid int) (string, error) {
	key := [2]int{uid, gid}
	m.etcMu.Lock()
	defer m.etcMu.Unlock()
	if dir, ok := m.etcDirs[key]; ok {
		return dir, nil
	}
	dir := filepath.Join(m.cfg.RootDir, "etc-"+strconv.Itoa(uid)+"-"+strconv.Itoa(gid))
	if err := buildEtc("/etc", dir, uid, gid); err != nil {
		return "", err
	}
	m.etcDirs[key] = dir
	return dir, nil
}

// buildEtc makes dst (replacing what a previous run left) from the host's
// hostEtc: a fresh directory built aside and renamed into place, so that a
// sandbox of a previous run that still has the old one bound keeps it.
func buildEtc(hostEtc, dst string, uid, gid int) error {
	tmp := dst + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("preparing sandbox /etc: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("preparing sandbox /etc: %w", err)
	}
	// MkdirAll obeys the umask; the sandbox user must be able to enter.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("preparing sandbox /etc: %w", err)
	}
	names := append([]string(nil), etcAllowed...)
	if py, _ := filepath.Glob(filepath.Join(hostEtc, "python3*")); len(py) > 0 {
		for _, p := range py {
			names = append(names, filepath.Base(p))
		}
	}
	for _, name := range names {
		if err := copyEtcEntry(filepath.Join(hostEtc, name), filepath.Join(tmp, name)); err != nil {
			return fmt.Errorf("preparing sandbox /etc: %w", err)
		}
	}
	written := map[string]string{
		"passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n" +
			fmt.Sprintf("%s:x:%d:%d::/tmp:/usr/sbin/nologin\n", sandboxUser, uid, gid) +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group": "root:x:0:\n" +
			fmt.Sprintf("%s:x:%d:\n", sandboxUser, gid) +
			"nogroup:x:65534:\n",
		"hosts":         "127.0.0.1\tlocalhost sandbox.localdomain " + Hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"hostname":      Hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
	}
	for name, content := range written {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("preparing sandbox /etc: %w", err)
		}
		if err := os.Chmod(filepath.Join(tmp, name), 0o644); err != nil {
			return fmt.Errorf("preparing sandbox /etc: %w", err)
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return fmt.Errorf("preparing sandbox /etc: removing the previous one: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("preparing sandbox /etc: %w", err)
	}
	return nil
}

// copyEtcEntry copies one host entry: a symlink as a symlink (those of
// /etc point into /usr or stay within /etc), a file or a directory tree
// with its modes, skipping what is neither. Only world-readable entries are
// copied: the sandbox user could not read the others on the host either
// (e.g. /etc/ssl/private).
func copyEtcEntry(src, dst string) error {
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) && !strings.HasPrefix(target, "/usr/") && !strings.HasPrefix(target, "/etc/") {
			// E.g. resolv.conf -> /run/...: copy what it points to.
			return copyResolved(src, dst)
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		if fi.Mode().Perm()&0o005 != 0o005 {
			return nil
		}
		if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := copyEtcEntry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		return os.Chmod(dst, 0o755)
	case fi.Mode().IsRegular():
		if fi.Mode().Perm()&0o004 == 0 {
			return nil
		}
		return copyFile(src, dst, fi.Mode().Perm())
	}
	return nil
}

func copyResolved(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // dangling
		}
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o004 == 0 {
		return nil
	}
	return copyFile(src, dst, fi.Mode().Perm())
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(in, maxEtcFile)); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, perm&^0o022)
}
