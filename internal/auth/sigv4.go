package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm       = "AWS4-HMAC-SHA256"
	amzDateFormat   = "20060102T150405Z"
	service         = "lambda"
	scopeTerm       = "aws4_request"
	unsignedPayload = "UNSIGNED-PAYLOAD"
)

// sigV4Auth is a parsed "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=..." header.
type sigV4Auth struct {
	accessKeyID, date, region, service, terminator string
	signedHeaders                                  []string
	signature                                      string
}

// sigV4 verifies a header-signed SigV4 request the way AWS does: it rebuilds
// the canonical request from the wire form of r and compares signatures.
func (a *Authenticator) sigV4(r *http.Request, body []byte, header string) (Principal, error) {
	sr, err := a.sigV4Headers(r, header)
	if err != nil {
		return Principal{}, err
	}
	payloadHash, err := payloadHash(r, sha256.Sum256(body))
	if err != nil {
		return Principal{}, err
	}
	return a.sigV4Verify(r, sr, payloadHash, len(body))
}

// signedRequest is what the headers of a SigV4 request give: the parsed
// Authorization header, the signing time and the key's secret.
type signedRequest struct {
	p       sigV4Auth
	amzDate string
	secret  string
}

// sigV4Headers checks everything of a SigV4 request that its headers alone
// prove: the header's form, the scope, the clock skew and a known key.
func (a *Authenticator) sigV4Headers(r *http.Request, header string) (signedRequest, error) {
	p, err := parseSigV4(header)
	if err != nil {
		return signedRequest{}, err
	}
	amzDate, dateHeader, err := requestDate(r)
	if err != nil {
		return signedRequest{}, err
	}
	if !slices.Contains(p.signedHeaders, "host") {
		return signedRequest{}, badScope("'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	if !slices.Contains(p.signedHeaders, strings.ToLower(dateHeader)) {
		return signedRequest{}, badScope(fmt.Sprintf("'%s' must be a 'SignedHeader' in the AWS Authorization.", dateHeader))
	}
	if p.service != service {
		return signedRequest{}, badScope(fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service))
	}
	if p.terminator != scopeTerm {
		return signedRequest{}, badScope(fmt.Sprintf("Credential should be scoped with a valid terminator: '%s', not '%s'.", scopeTerm, p.terminator))
	}
	if p.date != amzDate[:8] {
		return signedRequest{}, badScope(fmt.Sprintf(
			"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			p.date, amzDate[:8], dateHeader))
	}
	if err := a.checkSkew(amzDate); err != nil {
		return signedRequest{}, err
	}
	secret, ok := a.secrets[p.accessKeyID]
	if !ok {
		return signedRequest{}, unrecognizedClient(fmt.Sprintf("unknown access key id %q", p.accessKeyID))
	}
	return signedRequest{p: p, amzDate: amzDate, secret: secret}, nil
}

// sigV4Verify compares the signature with the one computed over the
// canonical request whose last line is payloadHash.
func (a *Authenticator) sigV4Verify(r *http.Request, sr signedRequest, payloadHash string, bodyLen int) (Principal, error) {
	p := sr.p
	headers := canonicalHeaders(r, p.signedHeaders, bodyLen)
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return Principal{}, err
	}
	scope := strings.Join([]string{p.date, p.region, p.service, scopeTerm}, "/")
	key := signingKey(sr.secret, p.date, p.region, p.service)

	wirePath := requestPath(r)
	for _, uri := range canonicalURIs(wirePath) {
		canonical := strings.Join([]string{
			r.Method, uri, query, headers, strings.Join(p.signedHeaders, ";"), payloadHash,
		}, "\n")
		digest := sha256.Sum256([]byte(canonical))
		toSign := algorithm + "\n" + sr.amzDate + "\n" + scope + "\n" + hex.EncodeToString(digest[:])
		want := hex.EncodeToString(hmacSHA256(key, toSign))
		if hmac.Equal([]byte(want), []byte(p.signature)) {
			return Principal{ID: p.accessKeyID, Method: "sigv4", Region: p.region}, nil
		}
	}
	return Principal{}, invalidSignature(fmt.Sprintf("access key %q, %s %s", p.accessKeyID, r.Method, wirePath))
}

// declaredPayloadHash is a valid X-Amz-Content-Sha256 value: UNSIGNED-PAYLOAD
// or 64 lower-case hex digits; "" when absent or malformed.
func declaredPayloadHash(r *http.Request) string {
	v := r.Header.Get("X-Amz-Content-Sha256")
	if v == unsignedPayload {
		return v
	}
	if len(v) != 2*sha256.Size {
		return ""
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return v
}

func parseSigV4(header string) (sigV4Auth, error) {
	var p sigV4Auth
	var credential, signed string
	var haveCred, haveSigned, haveSig bool
	for _, part := range strings.Split(strings.TrimPrefix(header, algorithm+" "), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			credential, haveCred = v, true
		case "SignedHeaders":
			signed, haveSigned = v, true
		case "Signature":
			p.signature, haveSig = v, true
		}
	}
	for _, f := range []struct {
		name string
		ok   bool
	}{{"Credential", haveCred}, {"Signature", haveSig}, {"SignedHeaders", haveSigned}} {
		if !f.ok {
			return p, incomplete(fmt.Sprintf("Authorization header requires '%s' parameter. Authorization=%s",
				f.name, redactSignature(header)))
		}
	}

	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" {
		return p, incomplete(fmt.Sprintf(
			"Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", credential))
	}
	p.accessKeyID, p.date, p.region, p.service, p.terminator = parts[0], parts[1], parts[2], parts[3], parts[4]

	p.signedHeaders = strings.Split(signed, ";")
	for i, h := range p.signedHeaders {
		if h == "" || h != strings.ToLower(h) || (i > 0 && h <= p.signedHeaders[i-1]) {
			return p, incomplete("SignedHeaders must be lowercase, sorted and without duplicates: " + signed)
		}
	}
	return p, nil
}

// redactSignature keeps a malformed header quotable in an error message
// without echoing the signature.
func redactSignature(header string) string {
	if i := strings.Index(header, "Signature="); i >= 0 {
		return header[:i] + "Signature=..."
	}
	return header
}

// requestDate returns the signing time in ISO 8601 basic form and the header
// it came from: X-Amz-Date, or Date when X-Amz-Date is absent.
func requestDate(r *http.Request) (amzDate, header string, err error) {
	if v := r.Header.Get("X-Amz-Date"); v != "" {
		if _, err := time.Parse(amzDateFormat, v); err != nil {
			return "", "", incomplete(fmt.Sprintf("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", v))
		}
		return v, "X-Amz-Date", nil
	}
	if v := r.Header.Get("Date"); v != "" {
		t, err := http.ParseTime(v)
		if err != nil {
			return "", "", incomplete(fmt.Sprintf("Date header could not be parsed: '%s'.", v))
		}
		return t.UTC().Format(amzDateFormat), "Date", nil
	}
	return "", "", incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
}

func (a *Authenticator) checkSkew(amzDate string) error {
	signed, _ := time.Parse(amzDateFormat, amzDate) // validated by requestDate
	now := a.now().UTC()
	skew := a.MaxClockSkew
	minutes := strconv.FormatFloat(skew.Minutes(), 'f', -1, 64)
	switch {
	case signed.Before(now.Add(-skew)):
		return expired(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s min.)",
			amzDate, now.Add(-skew).Format(amzDateFormat), now.Format(amzDateFormat), minutes))
	case signed.After(now.Add(skew)):
		return expired(fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %s min.)",
			amzDate, now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), minutes))
	}
	return nil
}

// payloadHash is the last line of the canonical request. Signers send
// X-Amz-Content-Sha256 for some services; when present it must be the real
// hash of the body (whose SHA-256 is sum) or UNSIGNED-PAYLOAD. Otherwise
// the hash is the body's.
func payloadHash(r *http.Request, sum [sha256.Size]byte) (string, error) {
	actual := hex.EncodeToString(sum[:])
	declared := r.Header.Get("X-Amz-Content-Sha256")
	switch declared {
	case "":
		return actual, nil
	case unsignedPayload:
		return declared, nil
	case actual:
		return actual, nil
	}
	return "", invalidSignature("X-Amz-Content-Sha256 does not match the body")
}

// canonicalHeaders renders the signed headers as "name:value\n" lines, values
// trimmed, inner runs of spaces collapsed and repeated headers joined by ",".
func canonicalHeaders(r *http.Request, names []string, bodyLen int) string {
	var b strings.Builder
	for _, name := range names {
		var values []string
		switch name {
		case "host":
			// Go moves Host out of r.Header; client-side requests may only have URL.Host.
			values = []string{r.Host}
			if r.Host == "" {
				values = []string{r.URL.Host}
			}
		case "content-length":
			values = r.Header.Values(name)
			if len(values) == 0 && bodyLen > 0 {
				values = []string{strconv.Itoa(bodyLen)}
			}
		default:
			values = r.Header.Values(name)
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(collapseSpaces(v))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func collapseSpaces(v string) string {
	v = strings.Trim(v, " ")
	for strings.Contains(v, "  ") {
		v = strings.ReplaceAll(v, "  ", " ")
	}
	return v
}

// canonicalQuery decodes each name and value, re-encodes them the SigV4 way
// (everything but unreserved characters as %XX) and sorts the encoded pairs.
func canonicalQuery(raw string) (string, error) {
	type pair struct{ k, v string }
	var pairs []pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return "", incomplete(fmt.Sprintf("The query string parameter '%s' is not correctly URL-encoded.", k))
		}
		pairs = append(pairs, pair{uriEncode(dk, true), uriEncode(dv, true)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k + "=" + p.v)
	}
	return b.String(), nil
}

// requestPath is the path exactly as the client sent it, still escaped. The
// request line (r.RequestURI) is authoritative: r.URL.EscapedPath may
// re-encode it differently, and routers may rewrite r.URL.
func requestPath(r *http.Request) string {
	p := r.RequestURI
	if !strings.HasPrefix(p, "/") {
		// Absolute-form target or a client-side request: fall back to the URL.
		p = r.URL.EscapedPath()
	}
	p, _, _ = strings.Cut(p, "?")
	if p == "" {
		p = "/"
	}
	return p
}

// canonicalURIs returns the canonical URI for the wire path. For every
// service but S3 the signers URI-encode the already-escaped path once more
// (so "%3A" becomes "%253A"). botocore also removes "." and ".." segments and
// empty segments first; aws-sdk-go-v2 does not, so both forms are tried when
// they differ.
func canonicalURIs(wirePath string) []string {
	plain := uriEncode(wirePath, false)
	normalized := uriEncode(removeDotSegments(wirePath), false)
	if plain == normalized {
		return []string{plain}
	}
	return []string{plain, normalized}
}

// removeDotSegments mirrors botocore.utils.remove_dot_segments.
func removeDotSegments(p string) string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	s := strings.Join(out, "/")
	if strings.HasPrefix(p, "/") {
		s = "/" + s
	}
	if strings.HasSuffix(p, "/") && len(out) > 0 {
		s += "/"
	}
	return s
}

// uriEncode percent-encodes every byte except A-Z a-z 0-9 - . _ ~ (and "/"
// unless encodeSlash), with uppercase hex, as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '/' && !encodeSlash {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, scopeTerm)
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
