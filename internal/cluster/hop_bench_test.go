package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/owl-project/owl/internal/natsbus"
	"github.com/owl-project/owl/internal/testkit"
)

// BenchmarkHop compares, for a request and a reply of the same size, a
// round trip over NATS request/reply (two clients of one nats-server over
// loopback TCP, as two nodes are) with one over a direct TCP connection
// between them (length-prefixed, one connection kept open): what a
// direct connection negotiated over NATS could save at most
// (docs/cluster.md, docs/benchmarks.md).
//
//	go test -run '^$' -bench BenchmarkHop ./internal/cluster
func BenchmarkHop(b *testing.B) {
	addr := testkit.FreeAddr(b)
	bus, err := natsbus.StartEmbeddedWith(context.Background(), b.TempDir(), slog.New(slog.DiscardHandler),
		natsbus.Options{Listen: addr, ClientUser: "bench", ClientPassword: "bench-password"})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	connect := func() *nats.Conn {
		nc, err := nats.Connect("nats://"+addr, nats.UserInfo("bench", "bench-password"))
		if err != nil {
			b.Fatal(err)
		}
		return nc
	}
	server, client := connect(), connect()
	defer server.Close()
	defer client.Close()
	sub, err := server.Subscribe("bench.hop", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := server.Flush(); err != nil {
		b.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go echoFrames(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()

	for _, size := range []int{1 << 10, 1 << 20, 6 << 20} {
		payload := make([]byte, size)
		b.Run("nats-"+sizeName(size), func(b *testing.B) {
			for range b.N {
				if _, err := client.Request("bench.hop", payload, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("tcp-"+sizeName(size), func(b *testing.B) {
			back := make([]byte, size)
			for range b.N {
				if err := writeFrame(conn, payload); err != nil {
					b.Fatal(err)
				}
				if err := readFrame(conn, back); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMB", n>>20)
	}
	return fmt.Sprintf("%dKB", n>>10)
}

// echoFrames answers each length-prefixed frame with itself, on every
// connection ln accepts, until ln closes.
func echoFrames(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			var buf []byte
			for {
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				size := int(binary.BigEndian.Uint32(n[:]))
				if cap(buf) < size {
					buf = make([]byte, size)
				}
				buf = buf[:size]
				if _, err := io.ReadFull(c, buf); err != nil || writeFrame(c, buf) != nil {
					return
				}
			}
		}()
	}
}

func writeFrame(w io.Writer, p []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(p)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(p)
	return err
}

func readFrame(r io.Reader, into []byte) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	_, err := io.ReadFull(r, into[:binary.BigEndian.Uint32(n[:])])
	return err
}
