package lambdawire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The application/vnd.amazon.eventstream framing InvokeWithResponseStream
// answers in (written by lambdaapi, read by client) (AWS's event stream encoding, as aws-sdk-go-v2's
// aws/protocol/eventstream and botocore read it). A message is
//
//	total length (4) | headers length (4) | CRC-32 of the 8 bytes before (4)
//	headers | payload | CRC-32 of all the bytes before (4)
//
// all integers big-endian, and a header is
//
//	name length (1) | name | value type (1; 7 = string) | value length (2) | value
//
// Only string headers are written: :message-type, :event-type and
// :content-type are all an event needs.

// eventHeaderString is the value type of a string header.
const eventHeaderString = 7

// AppendEvent appends to b one event message of type eventType (an event
// of the stream's union, e.g. PayloadChunk) whose payload has content type
// contentType.
func AppendEvent(b []byte, eventType, contentType string, payload []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, 12)...) // the prelude, filled in below
	b = appendEventHeader(b, ":event-type", eventType)
	b = appendEventHeader(b, ":content-type", contentType)
	b = appendEventHeader(b, ":message-type", "event")
	headersLen := len(b) - start - 12
	b = append(b, payload...)
	total := len(b) - start + 4
	binary.BigEndian.PutUint32(b[start:], uint32(total))
	binary.BigEndian.PutUint32(b[start+4:], uint32(headersLen))
	binary.BigEndian.PutUint32(b[start+8:], crc32.ChecksumIEEE(b[start:start+8]))
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// appendEventHeader appends a string header; names and values here are
// constants, well within the format's 255 and 65535 bytes.
func appendEventHeader(b []byte, name, value string) []byte {
	b = append(b, byte(len(name)))
	b = append(b, name...)
	b = append(b, eventHeaderString)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// StreamEvent is one message of an event stream as ReadEvent reads it.
type StreamEvent struct {
	// MessageType is :message-type (event, or exception for an error).
	MessageType string
	// EventType is :event-type (PayloadChunk, InvokeComplete).
	EventType string
	Payload   []byte
}

// maxEventMessage bounds a message ReadEvent accepts (the format's own
// limit on a payload is 16 MiB).
const maxEventMessage = 16<<20 + 128<<10

// ErrBadEvent is wrapped by ReadEvent for a message that is not the
// format's: a bad CRC, length or header.
var ErrBadEvent = errors.New("malformed event stream message")

// ReadEvent reads the next message of an event stream from r: io.EOF at
// the stream's end between messages, an error wrapping ErrBadEvent for a
// malformed one. Headers other than string ones are skipped by their
// declared type.
func ReadEvent(r *bufio.Reader) (StreamEvent, error) {
	var prelude [12]byte
	if _, err := io.ReadFull(r, prelude[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return StreamEvent{}, fmt.Errorf("%w: cut short", ErrBadEvent)
		}
		return StreamEvent{}, err
	}
	total := binary.BigEndian.Uint32(prelude[0:])
	headersLen := binary.BigEndian.Uint32(prelude[4:])
	if crc32.ChecksumIEEE(prelude[:8]) != binary.BigEndian.Uint32(prelude[8:]) {
		return StreamEvent{}, fmt.Errorf("%w: prelude CRC", ErrBadEvent)
	}
	if total < 16 || total > maxEventMessage || headersLen > total-16 {
		return StreamEvent{}, fmt.Errorf("%w: lengths %d and %d", ErrBadEvent, total, headersLen)
	}
	msg := make([]byte, total)
	copy(msg, prelude[:])
	if _, err := io.ReadFull(r, msg[12:]); err != nil {
		return StreamEvent{}, fmt.Errorf("%w: cut short: %w", ErrBadEvent, err)
	}
	if crc32.ChecksumIEEE(msg[:total-4]) != binary.BigEndian.Uint32(msg[total-4:]) {
		return StreamEvent{}, fmt.Errorf("%w: message CRC", ErrBadEvent)
	}
	ev := StreamEvent{Payload: msg[12+headersLen : total-4]}
	if err := readEventHeaders(msg[12:12+headersLen], &ev); err != nil {
		return StreamEvent{}, err
	}
	return ev, nil
}

// eventHeaderSizes is the value size of the fixed-size header types
// (0 bool true, 1 bool false, 2 byte, 3 short, 4 int, 5 long, 8 timestamp,
// 9 uuid); 6 (bytes) and 7 (string) carry a 2-byte length.
var eventHeaderSizes = map[byte]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}

// readEventHeaders fills ev's string headers from the headers block h.
func readEventHeaders(h []byte, ev *StreamEvent) error {
	for len(h) > 0 {
		n := int(h[0])
		if len(h) < 1+n+1 {
			return fmt.Errorf("%w: header cut short", ErrBadEvent)
		}
		name, typ := string(h[1:1+n]), h[1+n]
		h = h[2+n:]
		size, fixed := eventHeaderSizes[typ]
		if !fixed {
			if (typ != 6 && typ != eventHeaderString) || len(h) < 2 {
				return fmt.Errorf("%w: header %q of type %d", ErrBadEvent, name, typ)
			}
			size = int(binary.BigEndian.Uint16(h))
			h = h[2:]
		}
		if len(h) < size {
			return fmt.Errorf("%w: header %q cut short", ErrBadEvent, name)
		}
		if typ == eventHeaderString {
			switch v := string(h[:size]); name {
			case ":message-type":
				ev.MessageType = v
			case ":event-type":
				ev.EventType = v
			}
		}
		h = h[size:]
	}
	return nil
}

// InvokeComplete is the payload of InvokeWithResponseStream's last event.
type InvokeComplete struct {
	ErrorCode    string `json:",omitempty"`
	ErrorDetails string `json:",omitempty"`
	// LogResult is the last 4 KB of the log, base64-encoded (LogType Tail).
	LogResult string `json:",omitempty"`
}
