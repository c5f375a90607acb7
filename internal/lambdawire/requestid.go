package lambdawire

import (
	"crypto/rand"
	"encoding/hex"
)

// NewRequestID is a random (version 4) UUID, the form of Lambda's
// request ids. It is made for every request,
// so it is hex-encoded straight into its 36 bytes: one allocation, where
// EncodeToString and concatenation made three.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var u [36]byte
	hex.Encode(u[0:8], b[0:4])
	u[8] = '-'
	hex.Encode(u[9:13], b[4:6])
	u[13] = '-'
	hex.Encode(u[14:18], b[6:8])
	u[18] = '-'
	hex.Encode(u[19:23], b[8:10])
	u[23] = '-'
	hex.Encode(u[24:], b[10:])
	return string(u[:])
}

// NewID is a random id of n lower-case letters and digits: a function
// URL's (32, as Lambda's) or a route's.
func NewID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
