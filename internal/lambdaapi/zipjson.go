package lambdaapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// A code upload is JSON whose one large member is a base64 string: Code.ZipFile
// (CreateFunction), ZipFile (UpdateFunctionCode) or Content.ZipFile
// (PublishLayerVersion), up to 70 MB. zipScanner reads such a body as it
// arrives, copies everything but that string (the "rest", a few hundred
// bytes) to memory, and decodes the string into a writer (a file) without
// holding it.
//
// The rest keeps the request's meaning: each diverted string is replaced by
// a short marker string (zipMarker), which encoding/json then decodes into
// the ZipFile field like any other value, so the handler decodes the rest
// with the same structs and gets the same answers and errors as from the
// whole body:
//
//   - a string is diverted only where encoding/json would store it in the
//     ZipFile field: the value of a key that folds (bytes.EqualFold, after
//     unescaping) to each name of the path, in objects nested from the top;
//     keys repeat, so every such value is diverted and the last one is kept
//     (json keeps the last too);
//   - a syntax error inside a diverted string is copied as the string's
//     start and the offending bytes, so json reports it (its messages carry
//     no offset), and scanning stops there: json stops at the first error;
//   - a diverted string that is not base64 is replaced by "!", which json
//     fails to decode; the handler then reports the real error
//     (base64.CorruptInputError at the real offset, from b64Stream);
//   - anything the scanner does not follow (invalid JSON elsewhere) is
//     copied as is: json finds the error, or decodes what was copied.

// errStopped ends a scan at a syntax error inside a diverted string: what
// follows does not change the answer.
var errStopped = errors.New("scan stopped at a syntax error")

// zipMarkerPrefix starts the decoded bytes of every marker.
const zipMarkerPrefix = "\x00owl:upload:zip:"

// zipMarker is the JSON string that stands for the n-th diverted string
// (counted from 1).
func zipMarker(n int) string {
	return `"` + base64.StdEncoding.EncodeToString([]byte(zipMarkerPrefix+strconv.Itoa(n))) + `"`
}

// markerNumber is the n of zipMarker(n) that decoded to b, or 0.
func markerNumber(b []byte) int {
	s, ok := bytes.CutPrefix(b, []byte(zipMarkerPrefix))
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(string(s))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// zipSink receives the diverted strings.
type zipSink interface {
	// begin starts the n-th diverted string and returns where its decoded
	// bytes go.
	begin(n int) io.Writer
	// end reports the n-th string's base64 error, if any.
	end(n int, err error)
}

// zipScanner copies a JSON body from in to out, diverting the strings at
// path into sink.
type zipScanner struct {
	in   *bufio.Reader
	out  *heldBytes
	sink zipSink
	path []string
	n    int   // diverted strings so far
	err  error // the first read or write error: the scan ends
}

// scanZipJSON scans all of in (up to errStopped or an error of in or out).
func scanZipJSON(in *bufio.Reader, out *heldBytes, path []string, sink zipSink) error {
	s := &zipScanner{in: in, out: out, sink: sink, path: path}
	s.value(path, true)
	s.copyRest()
	return s.err
}

func (s *zipScanner) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// peek returns the next byte without consuming it; false at the end of
// the body or after an error.
func (s *zipScanner) peek() (byte, bool) {
	if s.err != nil {
		return 0, false
	}
	b, err := s.in.Peek(1)
	if err != nil {
		if err != io.EOF {
			s.fail(err)
		}
		return 0, false
	}
	return b[0], true
}

// buffered returns the bytes buffered (reading when none are) without
// consuming them; false at the end of the body or after an error.
func (s *zipScanner) buffered() ([]byte, bool) {
	if s.err != nil {
		return nil, false
	}
	b, err := s.in.Peek(max(1, s.in.Buffered()))
	if len(b) == 0 {
		if err != io.EOF {
			s.fail(err)
		}
		return nil, false
	}
	return b, true
}

// copyByte consumes the next byte, which peek returned, and copies it.
func (s *zipScanner) copyByte(c byte) {
	_, _ = s.in.Discard(1)
	if err := s.out.WriteByte(c); err != nil {
		s.fail(err)
	}
}

func (s *zipScanner) write(b []byte) {
	if s.err == nil {
		if _, err := s.out.Write(b); err != nil {
			s.fail(err)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// space copies white space.
func (s *zipScanner) space() {
	for {
		c, ok := s.peek()
		if !ok || !isSpace(c) {
			return
		}
		s.copyByte(c)
	}
}

// value copies one value; a string at the end of path (when match) is
// diverted, an object on the way to it is followed.
func (s *zipScanner) value(path []string, match bool) {
	s.space()
	c, ok := s.peek()
	switch {
	case !ok:
	case match && len(path) == 0 && c == '"':
		s.divert()
	case match && len(path) > 0 && c == '{':
		s.object(path)
	default:
		s.skipValue()
	}
}

// object copies an object whose member path[0] leads to the zip. It
// returns early, leaving the rest to copyRest, at anything that is not
// JSON.
func (s *zipScanner) object(path []string) {
	s.copyByte('{')
	s.space()
	if c, ok := s.peek(); !ok || c == '}' {
		if ok {
			s.copyByte(c)
		}
		return
	}
	for {
		s.space()
		if c, ok := s.peek(); !ok || c != '"' {
			return
		}
		key := s.copyString(128)
		s.space()
		if c, ok := s.peek(); !ok || c != ':' {
			return
		}
		s.copyByte(':')
		s.value(path[1:], keyIs(key, path[0]))
		s.space()
		c, ok := s.peek()
		if !ok || (c != ',' && c != '}') {
			return
		}
		s.copyByte(c)
		if c == '}' {
			return
		}
	}
}

// keyIs reports whether raw, a quoted key (nil when too long to matter),
// names field as encoding/json matches keys to struct fields.
func keyIs(raw []byte, field string) bool {
	if len(raw) < 2 {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.EqualFold(raw[1:len(raw)-1], []byte(field))
	}
	var key string
	return json.Unmarshal(raw, &key) == nil && bytes.EqualFold([]byte(key), []byte(field))
}

// skipValue copies one value of any kind, following nothing inside it.
func (s *zipScanner) skipValue() {
	depth := 0
	for {
		c, ok := s.peek()
		if !ok {
			return
		}
		switch {
		case c == '"':
			s.copyString(0)
		case c == '{' || c == '[':
			depth++
			s.copyByte(c)
		case c == '}' || c == ']':
			if depth == 0 {
				return // not ours: the enclosing object's (or an error)
			}
			depth--
			s.copyByte(c)
		case depth == 0 && (c == ',' || c == ':' || isSpace(c)):
			return
		default:
			s.copyByte(c)
		}
		if depth == 0 && (c == '"' || c == '}' || c == ']') {
			return
		}
	}
}

// copyString copies a string, which starts at the next byte, and returns
// its first keep bytes when it is no longer than that (quotes included).
func (s *zipScanner) copyString(keep int) []byte {
	var kept []byte
	s.copyByte('"')
	if keep > 0 {
		kept = append(kept, '"')
	}
	escaped := false
	for {
		b, ok := s.buffered()
		if !ok {
			return nil
		}
		i, end := 0, false
		for ; i < len(b); i++ {
			switch {
			case escaped:
				escaped = false
			case b[i] == '\\':
				escaped = true
			case b[i] == '"':
				end = true
			}
			if end {
				i++
				break
			}
		}
		s.write(b[:i])
		if keep > 0 && kept != nil {
			if len(kept)+i <= keep {
				kept = append(kept, b[:i]...)
			} else {
				kept = nil
			}
		}
		_, _ = s.in.Discard(i)
		if end {
			return kept
		}
	}
}

// divert decodes the string that starts at the next byte into the sink
// and copies a marker in its place.
func (s *zipScanner) divert() {
	_, _ = s.in.Discard(1) // the opening quote
	s.n++
	dec := newB64Stream(s.sink.begin(s.n))
	if bad := s.unquote(dec); bad != nil {
		// Reproduce the syntax error for json, and stop.
		s.write(append([]byte{'"'}, bad...))
		s.fail(errStopped)
		return
	}
	if s.err != nil {
		return
	}
	err := dec.Close()
	s.sink.end(s.n, err)
	if err != nil {
		s.write([]byte(`"!"`))
		return
	}
	s.write([]byte(zipMarker(s.n)))
}

// unquote streams the body of a JSON string, up to and including its
// closing quote, into dec as encoding/json unquotes it for base64: every
// byte, escape or not, below 0x80 is itself; anything else is not base64
// and is passed as 0xff (where it starts is all the error needs: no
// earlier byte is multi-byte). It returns the bytes to copy for json to
// find a syntax error in the string (what there is of the string's last
// escape, if any, at the end of the body), or nil.
func (s *zipScanner) unquote(dec *b64Stream) []byte {
	for {
		b, ok := s.buffered()
		if !ok {
			if s.err != nil {
				return nil
			}
			return []byte{} // "unexpected end of JSON input"
		}
		i := 0
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		dec.Write(b[:i])
		_, _ = s.in.Discard(i)
		if i == len(b) {
			continue
		}
		switch c := b[i]; {
		case c == '"':
			_, _ = s.in.Discard(1)
			return nil
		case c < 0x20:
			return []byte{c} // "invalid character ... in string literal"
		}
		// An escape: at most 6 bytes, which Peek returns together (or
		// fewer at the end of the body).
		e, err := s.in.Peek(6)
		if len(e) < 6 && err != io.EOF {
			s.fail(err)
			return nil
		}
		if len(e) < 2 {
			return append([]byte(nil), e...) // the body ends inside the escape
		}
		switch e[1] {
		case '"', '\\', '/':
			dec.writeByte(e[1])
		case 'b':
			dec.writeByte('\b')
		case 'f':
			dec.writeByte('\f')
		case 'n':
			dec.writeByte('\n')
		case 'r':
			dec.writeByte('\r')
		case 't':
			dec.writeByte('\t')
		case 'u':
			var r rune
			for j := 2; j < 6; j++ {
				if j == len(e) {
					return append([]byte(nil), e...) // the body ends inside the escape
				}
				h := unhex(e[j])
				if h < 0 {
					// All of the escape's six bytes: encoding/json
					// quotes up to the bad digit (Go ≤ 1.26) or all
					// six (Go ≥ 1.27) in its message.
					return append([]byte(nil), e...)
				}
				r = r<<4 | rune(h)
			}
			if r < 0x80 {
				dec.writeByte(byte(r))
			} else {
				dec.writeByte(0xff)
			}
			_, _ = s.in.Discard(6)
			continue
		default:
			return append([]byte(nil), e[:2]...) // "... in string escape code"
		}
		_, _ = s.in.Discard(2)
	}
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// copyRest copies what is left of the body (after the value, or where
// the scanner stopped following it).
func (s *zipScanner) copyRest() {
	for {
		b, ok := s.buffered()
		if !ok {
			return
		}
		s.write(b)
		_, _ = s.in.Discard(len(b))
	}
}

// b64Stream decodes base64 as encoding/json decodes a []byte field
// (base64.StdEncoding.Decode of the whole string: padding required, \r
// and \n ignored) while the string arrives, and fails with the error that
// call would return, at the same offset. It decodes whole quanta (runs of
// four characters other than \r and \n): the decoder reads nothing past a
// quantum but to check that only newlines follow padding, which it does
// itself across runs.
//
// Newlines are kept, for the offsets, except in the middle of a long run
// of them inside one quantum (which no encoder writes, but which a body
// may hold megabytes of): an error can only point into the first or last
// four bytes of such a run, so the middle is dropped and counted.
type b64Stream struct {
	w      io.Writer
	pend   []byte // not yet decoded
	start  int64  // offset of pend[0] in the string
	count  int    // characters of pend other than \r and \n
	padded bool   // a decoded quantum ended in padding
	err    error  // the first error: nothing more is decoded
	out    []byte
	// dropped lists the newlines dropped from pend: n of them after
	// pend[at-1].
	dropped []dropped
}

type dropped struct {
	at int
	n  int64
}

// b64Run is how much a b64Stream collects before decoding (a variable
// for tests, which cross its boundaries often).
var b64Run = 32 << 10

func newB64Stream(w io.Writer) *b64Stream { return &b64Stream{w: w} }

func isNewline(c byte) bool { return c == '\n' || c == '\r' }

// Write adds string bytes; it never fails (Close reports).
func (d *b64Stream) Write(p []byte) {
	if d.err != nil {
		return
	}
	for _, c := range p {
		if !isNewline(c) {
			d.count++
		}
	}
	d.pend = append(d.pend, p...)
	if len(d.pend) >= b64Run {
		d.flush(false)
	}
	if len(d.pend) >= b64Run && d.err == nil {
		d.compact() // fewer than four characters among newlines
	}
}

// writeByte adds one string byte.
func (d *b64Stream) writeByte(c byte) { d.Write([]byte{c}) }

// compact drops the middle of every run of more than eight newlines in
// pend (counting those dropped before).
func (d *b64Stream) compact() {
	out := make([]byte, 0, 64)
	var drops []dropped
	k := 0 // the next earlier drop
	for i := 0; i < len(d.pend); {
		if !isNewline(d.pend[i]) {
			out = append(out, d.pend[i])
			i++
			continue
		}
		j := i
		for j < len(d.pend) && isNewline(d.pend[j]) {
			j++
		}
		n := int64(j - i)
		for k < len(d.dropped) && d.dropped[k].at <= j {
			n += d.dropped[k].n
			k++
		}
		if n > 8 {
			out = append(out, d.pend[i:i+4]...)
			drops = append(drops, dropped{at: len(out), n: n - 8})
			out = append(out, d.pend[j-4:j]...)
		} else {
			out = append(out, d.pend[i:j]...)
		}
		i = j
	}
	d.pend, d.dropped = out, drops
}

// offset is the string offset of pend[i].
func (d *b64Stream) offset(i int) int64 {
	o := d.start + int64(i)
	for _, dr := range d.dropped {
		if dr.at <= i {
			o += dr.n
		}
	}
	return o
}

// flush decodes the whole quanta of pend (all of it when final).
func (d *b64Stream) flush(final bool) {
	cut := len(d.pend)
	if !final {
		// Just after the last character that ends a quantum.
		want, seen := d.count-d.count%4, 0
		cut = 0
		for i, c := range d.pend {
			if seen == want {
				break
			}
			if !isNewline(c) {
				seen++
				cut = i + 1
			}
		}
	}
	if cut == 0 {
		return
	}
	run := d.pend[:cut]
	if d.padded {
		// Only newlines may follow padding.
		for i, c := range run {
			if !isNewline(c) {
				d.err = base64.CorruptInputError(d.offset(i))
				return
			}
		}
	} else {
		if need := base64.StdEncoding.DecodedLen(len(run)); cap(d.out) < need {
			d.out = make([]byte, need)
		}
		n, err := base64.StdEncoding.Decode(d.out[:cap(d.out)], run)
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			d.err = base64.CorruptInputError(d.offset(int(ce)))
			return
		}
		if _, err := d.w.Write(d.out[:n]); err != nil {
			d.err = err
			return
		}
		d.padded = bytes.HasSuffix(bytes.TrimRight(run, "\r\n"), []byte("="))
	}
	for _, c := range run {
		if !isNewline(c) {
			d.count--
		}
	}
	d.start = d.offset(cut)
	d.dropped = d.dropped[:0] // all were before the cut
	d.pend = append(d.pend[:0], d.pend[cut:]...)
}

// Close decodes the rest and returns the first error: a
// base64.CorruptInputError, or the writer's.
func (d *b64Stream) Close() error {
	if d.err == nil {
		d.flush(true)
	}
	return d.err
}
