package lambdaapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// The streaming decoder must answer exactly what encoding/json answers for
// the whole body: the same values, the same zip bytes, the same error
// message. These tests compare the two on hand-written and random bodies.

// collectSink keeps every diverted string's decoded bytes.
type collectSink struct {
	zips   map[int]*bytes.Buffer
	b64Err error
}

func (c *collectSink) begin(n int) io.Writer {
	if c.zips == nil {
		c.zips = map[int]*bytes.Buffer{}
	}
	c.zips[n] = &bytes.Buffer{}
	return c.zips[n]
}

func (c *collectSink) end(n int, err error) {
	if err != nil && c.b64Err == nil {
		c.b64Err = err
	}
}

// streamDecode decodes body into v the way a code upload is: scanned with
// a small read buffer, the rest decoded by json, the zip put back.
func streamDecode(t testing.TB, body []byte, path []string, v any, field func(any) *[]byte) (heldLen int, err error) {
	t.Helper()
	in := bufio.NewReaderSize(iotestHalf{bytes.NewReader(body)}, 16)
	held := &heldBytes{budget: newBodyBudget(1 << 40)}
	sink := &collectSink{}
	serr := scanZipJSON(in, held, path, sink)
	if serr != nil && !errors.Is(serr, errStopped) {
		t.Fatalf("scan: %v", serr)
	}
	up := &upload{json: *held, b64Err: sink.b64Err, last: len(sink.zips)}
	if err := up.decode(v); err != nil {
		return len(held.buf), err
	}
	if f := field(v); f != nil {
		if n := markerNumber(*f); n > 0 {
			if n != up.last {
				t.Fatalf("the ZipFile decoded holds marker %d, the last string is %d", n, up.last)
			}
			*f = append([]byte{}, sink.zips[n].Bytes()...)
		}
	}
	return len(held.buf), nil
}

// iotestHalf returns at most half of what each Read asks (at least one
// byte): reads end everywhere.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) {
	return h.r.Read(p[:max(1, len(p)/2)])
}

type updateReq struct {
	codeInput
	Publish       bool     `json:"Publish"`
	DryRun        bool     `json:"DryRun"`
	RevisionId    string   `json:"RevisionId"`
	Architectures []string `json:"Architectures"`
}

type layerReq struct {
	Description        string     `json:"Description"`
	Content            *codeInput `json:"Content"`
	CompatibleRuntimes []string   `json:"CompatibleRuntimes"`
	LicenseInfo        string     `json:"LicenseInfo"`
}

type shape struct {
	name  string
	path  []string
	new   func() any
	field func(any) *[]byte
}

var shapes = []shape{
	{"create", createZipPath, func() any { return &createRequest{} }, func(v any) *[]byte {
		if c := v.(*createRequest).Code; c != nil {
			return &c.ZipFile
		}
		return nil
	}},
	{"update", updateZipPath, func() any { return &updateReq{} }, func(v any) *[]byte { return &v.(*updateReq).ZipFile }},
	{"layer", layerZipPath, func() any { return &layerReq{} }, func(v any) *[]byte {
		if c := v.(*layerReq).Content; c != nil {
			return &c.ZipFile
		}
		return nil
	}},
}

// compare checks that streaming body gives what json.Unmarshal gives.
func compare(t *testing.T, s shape, body []byte) {
	t.Helper()
	want, got := s.new(), s.new()
	werr := decode(body, want)
	_, gerr := streamDecode(t, body, s.path, got, s.field)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("%s %q:\nerror %v\nwant  %v", s.name, truncate(body), gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%s %q:\ngot  %+v\nwant %+v", s.name, truncate(body), got, want)
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func TestZipJSONCases(t *testing.T) {
	b64Run = 8
	defer func() { b64Run = 32 << 10 }()
	zip := base64.StdEncoding.EncodeToString([]byte("PK\x03\x04 a zip, or so it says \xff\x00"))
	wrapped := ""
	for i := 0; i < len(zip); i += 7 {
		wrapped += zip[i:min(i+7, len(zip))] + `\n`
	}
	cases := []string{
		`{"FunctionName":"f","Code":{"ZipFile":"` + zip + `"},"Runtime":"provided.al2023"}`,
		`{"ZipFile":"` + zip + `","Publish":true}`,
		`{"Content":{"ZipFile":"` + zip + `"},"Description":"d"}`,
		` { "Code" : { "ZipFile" : "` + zip + `" } , "ZipFile":"QQ==", "Content":{"ZipFile":"QUI="} } `,
		// Escapes in the string and the keys, case folding.
		`{"Code":{"ZipFile":"` + strings.ReplaceAll(zip, "/", `\/`) + `"}}`,
		`{"code":{"zipfile":"` + wrapped + `"}}`,
		`{"\u0043ode":{"Zip\u0046ile":"\u0051\u0051=\u003d"}}`,
		`{"ZIPFILE":"QUJD","zipFile":"REVG"}`,
		`{"Code":{"ZipFile":"QUJD"},"Code":{"S3Bucket":"b"}}`,
		`{"Code":{"ZipFile":"QUJD"},"Code":null}`,
		`{"Code":{"ZipFile":"QUJD"},"Code":{"ZipFile":null}}`,
		`{"Code":{"ZipFile":""}}`,
		`{"Code":{"ZipFile":null}}`,
		`{"Code":{"ZipFile":5}}`,
		`{"Code":{"ZipFile":["QUJD"]}}`,
		`{"Code":["ZipFile","QUJD"]}`,
		`{"Other":{"Code":{"ZipFile":"!!"}},"Code":{"ZipFile":"QUJD"}}`,
		`{"Description":"{\"Code\":{\"ZipFile\":\"QUJD\"}}","Code":{"ZipFile":"QUJD"}}`,
		`null`, ``, `   `, `[]`, `"str"`, `{}`, `{"Code":{}}`,
		// base64 errors, at their offsets.
		`{"Code":{"ZipFile":"QUJD!"}}`,
		`{"Code":{"ZipFile":"QQ==QQ=="}}`,
		`{"Code":{"ZipFile":"QQ=\nA"}}`,
		`{"Code":{"ZipFile":"QQ=\n"}}`,
		`{"Code":{"ZipFile":"QUJDQ"}}`,
		`{"Code":{"ZipFile":"QUJDRA"}}`,
		`{"Code":{"ZipFile":"QUJD\u00e9"}}`,
		`{"Code":{"ZipFile":"QUJDé"}}`,
		`{"Code":{"ZipFile":"QUJD\t"}}`,
		`{"Code":{"ZipFile":"QUJ=\n\r\nQUJD"}}`,
		`{"Code":{"ZipFile":"QUJD!"},"Code":{"ZipFile":"QUJD"}}`,
		`{"Code":{"ZipFile":"QUJD"},"Memory":"x","Timeout":"3","Code":{"ZipFile":"@"}}`,
		`{"Timeout":"3","Code":{"ZipFile":"@"}}`,
		// Syntax errors in and around the string.
		`{"Code":{"ZipFile":"QUJD`,
		`{"Code":{"ZipFile":"QUJD\`,
		`{"Code":{"ZipFile":"QUJD\u00`,
		`{"Code":{"ZipFile":"QUJD\x"}}`,
		`{"Code":{"ZipFile":"QUJD\u00g1"}}`,
		"{\"Code\":{\"ZipFile\":\"QUJD\x01\"}}",
		`{"Code":{"ZipFile":"QUJD"}`,
		`{"Code":{"ZipFile":"QUJD"}}}`,
		`{"Code":{"ZipFile":"QUJD"},}`,
		`{"Code" {"ZipFile":"QUJD"}}`,
		`{"Code":{"ZipFile" "QUJD"}}`,
		`{"Code":{"ZipFile":"QUJD" "x"}}`,
		`{"FunctionName": "f",`,
		`{"Timeout":01,"Code":{"ZipFile":"QUJD"}}`,
		`{"Code":{"ZipFile":"QUJD"}} x`,
	}
	for _, c := range cases {
		for _, s := range shapes {
			compare(t, s, []byte(c))
		}
	}
}

// TestB64Stream compares the streaming base64 decoder with
// base64.StdEncoding.Decode on random strings, written in random pieces.
func TestB64Stream(t *testing.T) {
	defer func() { b64Run = 32 << 10 }()
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "AQgw+/=\n\r!A"
	for i := range 200000 {
		b64Run = 4 + rng.IntN(20)
		n := rng.IntN(40)
		src := make([]byte, 0, n)
		for range n {
			if rng.IntN(12) == 0 {
				// A run of newlines, sometimes long enough to compact.
				src = append(src, bytes.Repeat([]byte("\n\r")[rng.IntN(2):][:1], rng.IntN(3)*rng.IntN(40))...)
				continue
			}
			c := alphabet[rng.IntN(len(alphabet))]
			if rng.IntN(3) > 0 {
				c = "ABCDQUJD"[rng.IntN(8)] // mostly valid
			}
			src = append(src, c)
		}
		want := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
		wn, werr := base64.StdEncoding.Decode(want, src)
		var got bytes.Buffer
		d := newB64Stream(&got)
		for rest := src; len(rest) > 0; {
			k := min(len(rest), 1+rng.IntN(9))
			d.Write(rest[:k])
			rest = rest[k:]
		}
		gerr := d.Close()
		if fmt.Sprint(gerr) != fmt.Sprint(werr) || (werr == nil && !bytes.Equal(got.Bytes(), want[:wn])) {
			t.Fatalf("case %d, run %d: %q\ngot  %q, %v\nwant %q, %v", i, b64Run, src, got.Bytes(), gerr, want[:wn], werr)
		}
	}
}

// TestZipJSONRandom compares random bodies built from pieces that matter
// to the scanner: keys that fold or not, escapes, values of every kind,
// broken syntax, cut anywhere.
func TestZipJSONRandom(t *testing.T) {
	defer func() { b64Run = 32 << 10 }()
	rng := rand.New(rand.NewPCG(3, 4))
	keys := []string{`"Code"`, `"code"`, `"C\u006fde"`, `"Content"`, `"ZipFile"`, `"zipfile"`, `"Zip\/File"`, `"ZipFilé"`,
		`"S3Bucket"`, `"FunctionName"`, `"Timeout"`, `"Publish"`, `"x"`, `"\u005aipFile"`}
	strs := []string{`"QUJD"`, `"QUJDRA=="`, `"QUJ\/RA=="`, `"QU\nJD"`, `"QQ"`, `"QQ=="`, `"!"`, `""`, `"QUJD\u0041AA="`,
		`"Q\u00e9"`, `"QUJD\x"`, `"QQ=\n="`, `"f"`, "\"QU\x02\""}
	var value func(depth int) string
	value = func(depth int) string {
		switch rng.IntN(9) {
		case 0, 1, 2:
			return strs[rng.IntN(len(strs))]
		case 3:
			return []string{"null", "true", "3", "-1.5e3", "01", "tru"}[rng.IntN(6)]
		case 4:
			if depth > 3 {
				return "[]"
			}
			var parts []string
			for range rng.IntN(3) {
				parts = append(parts, value(depth+1))
			}
			return "[" + strings.Join(parts, ",") + "]"
		default:
			if depth > 3 {
				return "{}"
			}
			var parts []string
			for range rng.IntN(4) {
				sep := []string{":", " : ", ":", ":", " "}[rng.IntN(5)]
				parts = append(parts, keys[rng.IntN(len(keys))]+sep+value(depth+1))
			}
			return "{" + strings.Join(parts, []string{",", " ,\n", ",", ",,"}[rng.IntN(4)]) + "}"
		}
	}
	for i := range 30000 {
		b64Run = 4 + rng.IntN(8)
		body := value(0)
		if rng.IntN(10) == 0 {
			body = body[:rng.IntN(len(body)+1)]
		}
		if rng.IntN(10) == 0 {
			body = " " + body + "\n"
		}
		s := shapes[i%len(shapes)]
		compare(t, s, []byte(body))
	}
}

// TestZipJSONHoldsLittle checks that a large zip is diverted, not held.
func TestZipJSONHoldsLittle(t *testing.T) {
	zip := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	body, _ := json.Marshal(map[string]any{"FunctionName": "f", "Code": map[string]any{"ZipFile": zip}})
	var req createRequest
	held, err := streamDecode(t, body, createZipPath, &req, shapes[0].field)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(req.Code.ZipFile, zip) || req.FunctionName != "f" {
		t.Fatalf("decoded %d bytes of zip, name %q", len(req.Code.ZipFile), req.FunctionName)
	}
	if held > 256 {
		t.Errorf("held %d bytes of a %d-byte body", held, len(body))
	}
}

func FuzzZipJSON(f *testing.F) {
	f.Add([]byte(`{"Code":{"ZipFile":"QUJD"},"FunctionName":"f"}`))
	f.Add([]byte(`{"ZipFile":"QQ=\n=","Content":{"zipfile":"\u0051"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, s := range shapes {
			compare(t, s, body)
		}
	})
}
