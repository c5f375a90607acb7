package server

import (
	"net"
	"strconv"
	"sync"
	"time"
)

// capListener caps the API's concurrent connections. A connection past the
// cap is answered 503 at once and closed — a client learns why, and the
// server spends no goroutine on it — rather than left waiting in the
// accept backlog.
type capListener struct {
	net.Listener
	slots chan struct{}
}

func newCapListener(ln net.Listener, max int) *capListener {
	return &capListener{Listener: ln, slots: make(chan struct{}, max)}
}

// overCapBody is the answer's body, in Lambda's error shape.
const overCapBody = `{"Type":"Service","message":"Too many connections to the server; retry shortly."}`

// overCapResponse is the complete HTTP/1.1 answer past the cap.
var overCapResponse = "HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: application/json\r\n" +
	"X-Amzn-ErrorType: ServiceException\r\n" +
	"Retry-After: 1\r\n" +
	"Connection: close\r\n" +
	"Content-Length: " + strconv.Itoa(len(overCapBody)) + "\r\n" +
	"\r\n" + overCapBody

// Accept returns the next connection within the cap; one past it is
// refused in the background and Accept goes on waiting.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &capConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
			go refuseConn(c)
		}
	}
}

func refuseConn(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(overCapResponse))
	_ = c.Close()
}

// capConn gives its slot back when closed.
type capConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
