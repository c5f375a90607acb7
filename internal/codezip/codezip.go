// Package codezip validates and unpacks function code zips.
//
// Threat model: a code zip is uploaded by a user and must be treated as
// hostile. It may try to write outside the directory it is unpacked into
// (zip-slip: "../x", absolute names, backslash or drive-letter names that
// other tools interpret as paths), plant symbolic links that lead out of that
// directory — directly ("/etc/passwd", "../../x") or by chaining links whose
// textual target looks harmless ("b" -> ".", "a" -> "b/..") — write through
// such links, or exhaust memory, disk and CPU with a zip bomb whose headers
// lie about sizes. Everything the sandbox or host tooling might later follow
// therefore has to stay inside the unpacked tree.
//
// Defences: every entry name must be a clean relative slash path; entries are
// placed in a model of the final tree in which symlinks are resolved the way
// the kernel will resolve them, so a link is refused unless everything it
// leads to stays inside the root, and entries reached through links are
// written at their real, link-free location. Sizes are checked from the
// headers first and then by counting the bytes actually inflated. Extract
// writes only through an [os.Root], never follows a link while writing,
// creates links last, masks permissions, and builds the tree in a private
// directory that is renamed into place only when complete.
//
// Errors that are the uploader's fault are [*Error] values wrapping one of
// the sentinels ([ErrNotZip], [ErrZippedTooLarge], [ErrUnzippedTooLarge],
// [ErrTooManyFiles], [ErrUnsafePath]) and carry a client-facing Message.
// Any other error (disk full, bad destination) is the platform's.
package codezip

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Limits bounds what a code zip may contain. All fields must be positive.
type Limits struct {
	MaxZipped   int64 // bytes of the zip itself
	MaxUnzipped int64 // bytes of file contents (and link targets) once unpacked
	// MaxFiles caps the entries in the zip (files, directories and links)
	// and, separately, the directories implied by deeper names alone.
	MaxFiles int
}

// DefaultLimits are Lambda's: 50 MB zipped, 250 MB unzipped, and a cap on the
// entry count that keeps a zip full of empty files cheap to refuse.
func DefaultLimits() Limits {
	return Limits{MaxZipped: 52428800, MaxUnzipped: 262144000, MaxFiles: 20000}
}

func (l Limits) validate() error {
	if l.MaxZipped <= 0 || l.MaxUnzipped <= 0 || l.MaxFiles <= 0 {
		return fmt.Errorf("codezip: invalid limits %+v: every limit must be positive", l)
	}
	return nil
}

// Info describes a validated code zip.
type Info struct {
	Sha256       [32]byte // of the zip bytes; Lambda's CodeSha256 is its base64
	ZippedSize   int64    // length of the zip; Lambda's CodeSize
	UnzippedSize int64    // bytes of file contents and link targets
	Entries      []Entry  // in archive order

	tree *tree
}

// Entry is one entry of the zip as it is (or would be) unpacked.
type Entry struct {
	Name string // path in the zip, without a directory's trailing slash
	// Mode is what Extract gives it: fs.ModeDir|0755 for directories,
	// 0755 or 0644 for files, fs.ModeSymlink|0777 for links.
	Mode   fs.FileMode
	Size   int64  // uncompressed size; for a link, the length of Target
	Target string // a link's target, relative to the link's directory
}

// Lstat reports the entry at name, a slash path relative to the root. Links
// in the directories leading to it are followed, a link named by name itself
// is not. Directories implied by deeper entries exist too.
func (in *Info) Lstat(name string) (Entry, bool) { return in.lookup(name, false) }

// Stat is Lstat that also follows a link named by name, so a caller can check
// that "bootstrap" is, or leads to, an executable file.
func (in *Info) Stat(name string) (Entry, bool) { return in.lookup(name, true) }

func (in *Info) lookup(name string, followLast bool) (Entry, bool) {
	if in.tree == nil || strings.HasPrefix(name, "/") {
		return Entry{}, false
	}
	budget := scanBudget
	n, err := in.tree.resolve(in.tree.root, name, missFail, followLast, &budget)
	if err != nil || n == nil {
		return Entry{}, false
	}
	if n.entry < 0 {
		return Entry{Name: n.path(), Mode: fs.ModeDir | dirPerm}, true
	}
	return in.Entries[n.entry], true
}

const (
	dirPerm  fs.FileMode = 0o755
	execPerm fs.FileMode = 0o755
	filePerm fs.FileMode = 0o644
	linkMode             = fs.ModeSymlink | 0o777

	maxPathLen = 4095 // PATH_MAX without the NUL; also caps link targets
	maxNameLen = 255  // NAME_MAX
)

// Inspect validates zipBytes against lim without writing anything: the
// archive must be readable, every name safe, every link lead inside the root,
// and the contents must really inflate to their declared sizes (all of them
// are decompressed and checksummed, so Extract will not find a corrupt entry).
func Inspect(zipBytes []byte, lim Limits) (Info, error) {
	return InspectAt(bytes.NewReader(zipBytes), int64(len(zipBytes)), lim)
}

// InspectAt is Inspect of a zip of size bytes read from r (a file, for a
// zip too large to hold in memory). An error reading r is returned
// wrapped, not as an [*Error]: it is not the zip's fault.
func InspectAt(r io.ReaderAt, size int64, lim Limits) (Info, error) {
	s, err := scan(r, size, lim)
	if err != nil {
		return Info{}, err
	}
	buf := make([]byte, 32<<10)
	var written int64
	for i, e := range s.info.Entries {
		if e.Mode.IsRegular() {
			if err := copyEntry(io.Discard, s.files[i], &written, lim, buf); err != nil {
				return Info{}, err
			}
		}
	}
	return s.info, nil
}

// scanned is a zip whose headers, names and links have been validated.
type scanned struct {
	info  Info
	files []*zip.File // files[i] holds info.Entries[i]
	nodes []*node     // nodes[i] is where info.Entries[i] goes
}

// scan checks everything short of inflating file contents: sizes from the
// headers, names, duplicates, and where each link really leads.
func scan(r io.ReaderAt, size int64, lim Limits) (*scanned, error) {
	if err := lim.validate(); err != nil {
		return nil, err
	}
	if size > lim.MaxZipped {
		return nil, &Error{Kind: ErrZippedTooLarge, Limit: lim.MaxZipped,
			Detail: fmt.Sprintf("zip is %d bytes", size)}
	}
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // our own name checks are stricter
		return nil, &Error{Kind: ErrNotZip, Err: err}
	}
	if len(zr.File) > lim.MaxFiles {
		return nil, &Error{Kind: ErrTooManyFiles, Limit: int64(lim.MaxFiles),
			Detail: fmt.Sprintf("zip has %d entries", len(zr.File))}
	}

	s := &scanned{
		info: Info{
			ZippedSize: size,
			Entries:    make([]Entry, 0, len(zr.File)),
		},
		files: make([]*zip.File, 0, len(zr.File)),
		nodes: make([]*node, 0, len(zr.File)),
	}
	t := newTree(lim.MaxFiles)
	s.info.tree = t
	var links []*node
	for _, f := range zr.File {
		e, err := checkHeader(f, lim, &s.info.UnzippedSize)
		if err != nil {
			return nil, err
		}
		if e.Mode&fs.ModeSymlink != 0 {
			if e.Target, err = readLink(f); err != nil {
				return nil, err
			}
		}
		n, err := t.insert(e.Name, f.Name, e.Mode, e.Target, len(s.info.Entries))
		if err != nil {
			return nil, err
		}
		if e.Mode&fs.ModeSymlink != 0 {
			links = append(links, n)
		}
		s.info.Entries = append(s.info.Entries, e)
		s.files = append(s.files, f)
		s.nodes = append(s.nodes, n)
	}
	// Only now is the tree complete, so only now can a link be followed to
	// its end.
	for _, n := range links {
		if err := t.checkLink(n); err != nil {
			return nil, err
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return nil, fmt.Errorf("codezip: reading the zip: %w", err)
	}
	h.Sum(s.info.Sha256[:0])
	return s, nil
}

// checkHeader validates one entry's header and returns it as an Entry with
// the mode it will be unpacked with. It adds the declared size to *total.
func checkHeader(f *zip.File, lim Limits, total *int64) (Entry, error) {
	raw := f.Name
	unsafe := func(detail string) (Entry, error) {
		return Entry{}, &Error{Kind: ErrUnsafePath, Entry: raw, Detail: detail}
	}
	notZip := func(detail string, err error) (Entry, error) {
		return Entry{}, &Error{Kind: ErrNotZip, Entry: raw, Detail: detail, Err: err}
	}

	mode := f.Mode()
	typ := mode.Type()
	var e Entry
	switch {
	case typ == fs.ModeDir:
		e.Mode = fs.ModeDir | dirPerm
	case typ == 0:
		e.Mode = filePerm
		if mode&0o111 != 0 {
			e.Mode = execPerm
		}
	case typ == fs.ModeSymlink:
		e.Mode = linkMode
	case typ&fs.ModeSymlink != 0: // a link whose name ends in "/"
		return unsafe("is a symbolic link with a directory name")
	default:
		return unsafe(fmt.Sprintf("has unsupported file type %v", typ))
	}

	name := raw
	if e.Mode.IsDir() {
		name = strings.TrimSuffix(name, "/")
	}
	if detail := checkName(name); detail != "" {
		return unsafe(detail)
	}
	e.Name = name

	if f.Flags&0x1 != 0 {
		return notZip("is encrypted", nil)
	}
	if f.Method != zip.Store && f.Method != zip.Deflate {
		return notZip(fmt.Sprintf("uses unsupported compression method %d", f.Method), zip.ErrAlgorithm)
	}
	if e.Mode.IsDir() {
		if f.UncompressedSize64 != 0 {
			return notZip("is a directory with contents", nil)
		}
		return e, nil
	}
	size := f.UncompressedSize64
	if size > uint64(lim.MaxUnzipped-*total) {
		return Entry{}, &Error{Kind: ErrUnzippedTooLarge, Entry: raw, Limit: lim.MaxUnzipped,
			Detail: fmt.Sprintf("declared sizes exceed %d bytes", lim.MaxUnzipped)}
	}
	*total += int64(size)
	e.Size = int64(size)
	return e, nil
}

// checkName returns why name (without a directory's trailing slash) is not a
// safe relative path, or "" if it is.
func checkName(name string) string {
	switch {
	case name == "":
		return "has an empty name"
	case strings.IndexByte(name, 0) >= 0:
		return "contains a NUL byte"
	case strings.IndexByte(name, '\\') >= 0:
		// Zip names use "/"; a backslash is either a Windows path that
		// would not unpack as intended or an attempt to smuggle "..\".
		return "contains a backslash"
	case name[0] == '/':
		return "is an absolute path"
	case hasDriveLetter(name):
		return "starts with a drive letter"
	case len(name) > maxPathLen:
		return "has a name that is too long"
	}
	for elem := range strings.SplitSeq(name, "/") {
		switch {
		case elem == "..":
			return "escapes the code root"
		case elem == "" || elem == ".":
			return "is not a clean relative path"
		case len(elem) > maxNameLen:
			return "has a name that is too long"
		}
	}
	return ""
}

func hasDriveLetter(s string) bool {
	return len(s) >= 2 && s[1] == ':' && ('a' <= s[0]|0x20 && s[0]|0x20 <= 'z')
}

// readLink reads a link entry's target and checks its syntax. Where the
// target leads is checked once the whole tree is known.
func readLink(f *zip.File) (string, error) {
	unsafe := func(detail string) (string, error) {
		return "", &Error{Kind: ErrUnsafePath, Entry: f.Name, Detail: detail}
	}
	if f.UncompressedSize64 > maxPathLen {
		return unsafe("is a symbolic link with a target that is too long")
	}
	rc, err := f.Open()
	if err != nil {
		return "", &Error{Kind: ErrNotZip, Entry: f.Name, Detail: "cannot be read", Err: err}
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPathLen+1))
	if err == nil && len(b) > maxPathLen {
		err = zip.ErrFormat // the reader checks declared sizes; belt and braces
	}
	if err != nil {
		return "", &Error{Kind: ErrNotZip, Entry: f.Name, Detail: "is corrupt", Err: err}
	}
	target := string(b)
	switch {
	case target == "":
		return unsafe("is a symbolic link with an empty target")
	case strings.IndexByte(target, 0) >= 0:
		return unsafe("is a symbolic link whose target contains a NUL byte")
	case strings.IndexByte(target, '\\') >= 0:
		return unsafe("is a symbolic link whose target contains a backslash")
	case path.IsAbs(target) || hasDriveLetter(target):
		return unsafe(fmt.Sprintf("is a symbolic link to absolute path %q", target))
	}
	return target, nil
}

// copyEntry inflates f into w, adding the bytes to *written and failing once
// they pass lim.MaxUnzipped, whatever the headers claimed.
func copyEntry(w io.Writer, f *zip.File, written *int64, lim Limits, buf []byte) error {
	corrupt := func(err error) error {
		return &Error{Kind: ErrNotZip, Entry: f.Name, Detail: "is corrupt", Err: err}
	}
	rc, err := f.Open()
	if err != nil {
		return corrupt(err)
	}
	defer rc.Close()
	for {
		n, rerr := rc.Read(buf)
		if n > 0 {
			if int64(n) > lim.MaxUnzipped-*written {
				return &Error{Kind: ErrUnzippedTooLarge, Entry: f.Name, Limit: lim.MaxUnzipped,
					Detail: fmt.Sprintf("contents inflate past %d bytes", lim.MaxUnzipped)}
			}
			*written += int64(n)
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("codezip: writing %q: %w", f.Name, err)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return corrupt(rerr)
		}
	}
}
