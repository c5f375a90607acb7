package codezip

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// tree models the directory tree a zip unpacks to, so that symbolic links
// can be resolved the way the kernel will resolve them on disk. Textual
// checks are not enough: with "b" -> "." in place, "a" -> "b/.." looks like it
// stays inside but leads to the root's parent.
//
// Nodes hang off their real (link-free) parent, so ".." is always the real
// parent and a walk never builds strings. An entry whose name passes through
// a link ("a/x" with "a" -> ".") is placed where the link leads; Extract
// writes it there, so writing never goes through a link.
type tree struct {
	root     *node
	names    []string // entry index -> name as stored in the zip, for messages
	implicit int      // directories created for deeper entries
	maxDirs  int      // cap on implicit, so deep names cannot blow up memory
	budget   int      // link target bytes the scan may still expand
}

type node struct {
	name     string
	parent   *node // nil for the root
	children map[string]*node
	mode     fs.FileMode // as in Entry.Mode
	target   string      // links only
	entry    int         // index into Info.Entries; -1 for an implied directory
}

const (
	maxHops = 40 // links followed in one resolution, as Linux's MAXSYMLINKS
	// scanBudget bounds the work of following links over a whole zip, so
	// long chains of long targets cannot turn a scan quadratic. Real code
	// zips use a tiny fraction.
	scanBudget = 16 << 20
)

var (
	errEscape   = errors.New("leads outside the root")
	errNotDir   = errors.New("a path element is not a directory")
	errLoop     = errors.New("too many levels of symbolic links")
	errNotFound = errors.New("no such entry")
	errTooDeep  = errors.New("too many implied directories")
)

func newTree(maxDirs int) *tree {
	return &tree{
		root:    &node{mode: fs.ModeDir | dirPerm, entry: -1},
		maxDirs: maxDirs,
		budget:  scanBudget,
	}
}

// missing says what resolve does with a path element that does not exist.
type missing int

const (
	missCreate  missing = iota // create it as an implied directory
	missLexical                // treat it as an empty directory: nothing below exists, ".." climbs back
	missFail                   // fail with errNotFound
)

// resolve walks p from the directory start, following links (the last
// element only if followLast). It returns the node reached, or nil if p
// leads to something that does not exist (missLexical only).
func (t *tree) resolve(start *node, p string, miss missing, followLast bool, budget *int) (*node, error) {
	cur := start
	phantom := 0 // elements walked below cur that do not exist (missLexical)
	hops := 0
	stack := []string{p} // paths still to walk, innermost link target last
	for {
		for len(stack) > 0 && stack[len(stack)-1] == "" {
			stack = stack[:len(stack)-1]
		}
		if len(stack) == 0 {
			break
		}
		top := len(stack) - 1
		elem, rest, _ := strings.Cut(stack[top], "/")
		stack[top] = rest
		switch {
		case elem == "" || elem == ".":
			continue
		case phantom > 0:
			if elem == ".." {
				phantom--
			} else {
				phantom++
			}
			continue
		case elem == "..":
			if cur.parent == nil {
				return nil, errEscape
			}
			cur = cur.parent
			continue
		}
		n := cur.children[elem]
		if n == nil {
			switch miss {
			case missCreate:
				if t.implicit >= t.maxDirs {
					return nil, errTooDeep
				}
				t.implicit++
				n = cur.add(&node{name: elem, mode: fs.ModeDir | dirPerm, entry: -1})
			case missLexical:
				phantom = 1
				continue
			default:
				return nil, errNotFound
			}
		}
		switch {
		case n.mode.IsDir():
			cur = n
		case n.mode&fs.ModeSymlink != 0 && (followLast || !isLast(stack)):
			hops++
			*budget -= len(n.target)
			if hops > maxHops || *budget < 0 {
				return nil, errLoop
			}
			stack = append(stack, n.target) // resolved from cur, the link's directory
		case isLast(stack):
			return n, nil
		default:
			return nil, errNotDir
		}
	}
	if phantom > 0 {
		return nil, nil
	}
	return cur, nil
}

// isLast reports whether no path elements other than "." remain. A trailing
// "/." makes the kernel follow a final link, so it counts as an element.
func isLast(stack []string) bool {
	for _, s := range stack {
		if s != "" {
			return false
		}
	}
	return true
}

func (n *node) add(c *node) *node {
	if n.children == nil {
		n.children = make(map[string]*node)
	}
	c.parent = n
	n.children[c.name] = c
	return c
}

// path is n's real path relative to the root ("" for the root).
func (n *node) path() string {
	var elems []string
	for ; n.parent != nil; n = n.parent {
		elems = append(elems, n.name)
	}
	for i, j := 0, len(elems)-1; i < j; i, j = i+1, j-1 {
		elems[i], elems[j] = elems[j], elems[i]
	}
	return strings.Join(elems, "/")
}

// insert places entry idx, named name (checked by checkName; raw is the name
// as stored), in the tree: in the real directory its name leads to.
func (t *tree) insert(name, raw string, mode fs.FileMode, target string, idx int) (*node, error) {
	t.names = append(t.names, raw)
	unsafe := func(detail string) error {
		return &Error{Kind: ErrUnsafePath, Entry: raw, Detail: detail}
	}
	dir, base := "", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	parent, err := t.resolve(t.root, dir, missCreate, true, &t.budget)
	switch {
	case errors.Is(err, errTooDeep):
		return nil, &Error{Kind: ErrTooManyFiles, Entry: raw, Limit: int64(t.maxDirs),
			Detail: fmt.Sprintf("implies more than %d directories", t.maxDirs)}
	case errors.Is(err, errEscape):
		return nil, unsafe("escapes the code root through a symbolic link")
	case errors.Is(err, errLoop):
		return nil, unsafe("lies under symbolic links that loop or nest too deeply")
	case err != nil || !parent.mode.IsDir():
		return nil, unsafe("lies under an entry that is not a directory")
	}
	if n := parent.children[base]; n != nil {
		switch {
		case n.entry < 0 && mode.IsDir():
			n.entry = idx // the directory was implied by an earlier entry
			return n, nil
		case n.entry < 0:
			return nil, unsafe("collides with a directory implied by other entries")
		case t.names[n.entry] == raw:
			return nil, unsafe("is a duplicate entry")
		default:
			return nil, unsafe(fmt.Sprintf("collides with entry %q", t.names[n.entry]))
		}
	}
	return parent.add(&node{name: base, mode: mode, target: target, entry: idx}), nil
}

// checkLink refuses link n unless following it, through any further links,
// stays inside the root. A target that does not exist is fine as long as
// even its textual ".." steps stay inside.
func (t *tree) checkLink(n *node) error {
	_, err := t.resolve(n.parent, n.target, missLexical, true, &t.budget)
	if err == nil {
		return nil
	}
	e := &Error{Kind: ErrUnsafePath, Entry: t.names[n.entry]}
	switch {
	case errors.Is(err, errEscape):
		e.Detail = fmt.Sprintf("is a symbolic link to %q, which leads outside the code root", n.target)
	case errors.Is(err, errLoop):
		e.Detail = fmt.Sprintf("is a symbolic link to %q, which loops or nests links too deeply", n.target)
	default:
		e.Detail = fmt.Sprintf("is a symbolic link to %q, which passes through a file", n.target)
	}
	return e
}
