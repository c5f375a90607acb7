package testkit

import (
	"net"
	"testing"
)

// Listen is a TCP listener on a free loopback port, closed when t ends
// (closing it earlier does no harm).
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// FreeAddr is a loopback address ("127.0.0.1:port") that no one listens
// on right now: for a server the test starts, or one it wants refused.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln := Listen(t)
	ln.Close()
	return ln.Addr().String()
}
