package server_test

// A client without credentials costs the server its headers, never a
// body: no body is read before the headers authenticate it, slow bodies
// are cut, and connections are capped. Measured on a real `owl serve`
// process (its RSS), as an attacker would meet it.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rssMB is the resident set size of pid in MB.
func rssMB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb >> 10
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// rawConn opens a TCP connection to the server and writes head.
func rawConn(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	return c
}

// statusAndClose reads the response status code, then waits until the
// server closes the connection (within wait).
func statusAndClose(c net.Conn, wait time.Duration) (int, bool) {
	c.SetReadDeadline(time.Now().Add(wait))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, false
	}
	code, _ := strconv.Atoi(strings.Fields(line)[1])
	_, err = io.Copy(io.Discard, br)
	// EOF or a reset (the server closed with our body unread): closed.
	// A timeout: still open.
	var ne net.Error
	closed := err == nil || !(errors.As(err, &ne) && ne.Timeout())
	return code, closed
}

func TestPreAuthLimits(t *testing.T) {
	t.Parallel()
	p := startOwl(t, t.TempDir(), "OWL_MAX_CONNECTIONS=64")
	addr := strings.TrimPrefix(p.URL, "http://")
	pid := p.cmd.Process.Pid
	base := rssMB(t, pid)
	const invokePath = "/2015-03-31/functions/f/invocations"

	t.Run("huge declared bodies without credentials", func(t *testing.T) {
		// Headers promising 70 MB each, and a first MB of it.
		var wg sync.WaitGroup
		for range 10 {
			c := rawConn(t, addr, "POST "+invokePath+" HTTP/1.1\r\nHost: x\r\nContent-Length: 70953642\r\n\r\n")
			wg.Go(func() {
				_, _ = c.Write(make([]byte, 1<<20)) // may fail once the server closes
				if code, closed := statusAndClose(c, 20*time.Second); code != 403 || !closed {
					t.Errorf("unauthenticated 70 MB body: status %d, closed %v; want 403 and closed", code, closed)
				}
			})
		}
		wg.Wait()
	})

	t.Run("chunked bodies without credentials", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			c := rawConn(t, addr, "POST "+invokePath+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
			wg.Go(func() {
				chunk := fmt.Sprintf("%x\r\n%s\r\n", 1<<20, strings.Repeat("a", 1<<20))
				for range 4 {
					if _, err := c.Write([]byte(chunk)); err != nil {
						break
					}
				}
				if code, closed := statusAndClose(c, 20*time.Second); code != 403 || !closed {
					t.Errorf("unauthenticated chunked body: status %d, closed %v; want 403 and closed", code, closed)
				}
			})
		}
		wg.Wait()
	})

	t.Run("bodies signed with a known key but a bad signature", func(t *testing.T) {
		// SigV4 clients sign a body hash they do not send: the server must
		// read the body to verify them. Past the headers' checks (a known
		// key, a fresh date), such bodies share a small budget.
		now := time.Now().UTC()
		authz := "AWS4-HMAC-SHA256 Credential=" + testKeyID + "/" + now.Format("20060102") +
			"/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + strings.Repeat("0", 64)
		var wg sync.WaitGroup
		statuses := make([]int, 8)
		for i := range 8 {
			c := rawConn(t, addr, "POST "+invokePath+" HTTP/1.1\r\nHost: x\r\nX-Amz-Date: "+now.Format("20060102T150405Z")+
				"\r\nAuthorization: "+authz+"\r\nContent-Length: 6291556\r\n\r\n")
			wg.Go(func() {
				_, _ = c.Write(make([]byte, 6291556))
				statuses[i], _ = statusAndClose(c, 30*time.Second)
			})
		}
		wg.Wait()
		for _, s := range statuses {
			if s != 403 && s != 429 {
				t.Errorf("bad signatures over 6 MB bodies: statuses %v; want each 403 (read, refused) or 429 (over the budget)", statuses)
				break
			}
		}
	})

	if grew := rssMB(t, pid) - base; grew > 96 {
		t.Errorf("owl serve's RSS grew by %d MB under unauthenticated bodies (from %d MB)", grew, base)
	} else {
		t.Logf("RSS %d MB before, grew by %d MB", base, grew)
	}

	t.Run("a slow body is cut", func(t *testing.T) {
		// Authenticated, then 10 bytes of a promised MB and silence: the
		// body must keep a minimum rate after a grace period.
		var wg sync.WaitGroup
		for range 5 {
			c := rawConn(t, addr, "POST "+invokePath+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+
				"\r\nContent-Length: 1048576\r\n\r\n0123456789")
			wg.Go(func() {
				start := time.Now()
				c.SetReadDeadline(time.Now().Add(60 * time.Second))
				_, err := io.Copy(io.Discard, c)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("a stalled body was still held after %v: %v", time.Since(start), err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("connections past the cap get 503", func(t *testing.T) {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		// Hold connections, each answered (so the server accepted it and
		// keeps it), until one is refused: at the cap of 64, less the
		// harness's own client connections.
		refused := false
		for !refused && len(held) < 70 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(c, "GET /2016-08-19/account-settings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+testToken+"\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("connection %d: %v", len(held)+1, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				c.SetDeadline(time.Time{})
				held = append(held, c)
			case 503:
				refused = true
				// And closed: nothing more is read from it.
				_, err := br.ReadByte()
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("the connection past the cap got 503 but was kept open")
				}
				c.Close()
			default:
				t.Fatalf("connection %d: status %d", len(held)+1, resp.StatusCode)
			}
		}
		if !refused || len(held) > 64 || len(held) < 60 {
			t.Errorf("%d connections held, then refused: %v; want 503 at the cap of 64 (less a few of the harness's)", len(held), refused)
		}
		for _, c := range held {
			c.Close()
		}
		held = nil
		// Slots come back when connections close.
		eventually(t, 10*time.Second, func() error {
			resp, _ := p.do("GET", "/2016-08-19/account-settings", nil, nil)
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d after the held connections closed", resp.StatusCode)
			}
			return nil
		})
	})
}
