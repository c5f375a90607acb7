package lambdawire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestEventStreamRoundTrip: ReadEvent reads what AppendEvent writes, ends
// with io.EOF between messages, and refuses a flipped bit or a message cut
// short.
func TestEventStreamRoundTrip(t *testing.T) {
	var b []byte
	b = AppendEvent(b, "PayloadChunk", "application/octet-stream", []byte("hello"))
	b = AppendEvent(b, "PayloadChunk", "application/octet-stream", nil)
	b = AppendEvent(b, "InvokeComplete", "application/json", []byte(`{}`))
	r := bufio.NewReader(bytes.NewReader(b))
	for _, want := range []StreamEvent{
		{"event", "PayloadChunk", []byte("hello")},
		{"event", "PayloadChunk", []byte{}},
		{"event", "InvokeComplete", []byte(`{}`)},
	} {
		got, err := ReadEvent(r)
		if err != nil || got.MessageType != want.MessageType || got.EventType != want.EventType || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("ReadEvent = %+v, %v; want %+v", got, err, want)
		}
	}
	if _, err := ReadEvent(r); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}

	one := AppendEvent(nil, "PayloadChunk", "application/octet-stream", []byte("hello"))
	for name, bad := range map[string][]byte{
		"prelude bit":  flip(one, 2),
		"payload bit":  flip(one, len(one)-6),
		"cut short":    one[:len(one)-1],
		"prelude only": one[:10],
	} {
		if _, err := ReadEvent(bufio.NewReader(bytes.NewReader(bad))); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: %v, want ErrBadEvent", name, err)
		}
	}
}

// flip returns a copy of b with one bit of byte i flipped.
func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}
