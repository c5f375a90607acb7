package lambdaapi

import (
	"encoding/binary"
	"hash/crc32"
)

// The application/vnd.amazon.eventstream framing InvokeWithResponseStream
// answers in (AWS's event stream encoding, as aws-sdk-go-v2's
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

// appendEvent appends to b one event message of type eventType (an event
// of the stream's union, e.g. PayloadChunk) whose payload has content type
// contentType.
func appendEvent(b []byte, eventType, contentType string, payload []byte) []byte {
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
