package sandbox

// A minimal rtnetlink client: the handful of requests the egress network
// needs (create and delete links, set a bridge port flag, add an address
// and a route), each acknowledged by the kernel. Hand-written on
// golang.org/x/sys/unix rather than a netlink library, like the cgroup
// code: see docs/network.md.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vethInfoPeer is VETH_INFO_PEER (linux/veth.h), not in x/sys/unix.
const vethInfoPeer = 1

var nlSeq atomic.Uint32

// nlConn is a NETLINK_ROUTE socket of the network namespace of the
// thread that opened it. Not safe for concurrent use.
type nlConn struct{ fd int }

func dialNetlink() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &nlConn{fd: fd}, nil
}

func (c *nlConn) Close() error { return unix.Close(c.fd) }

// do sends one request and waits for its acknowledgement, returning the
// kernel's errno (e.g. unix.EEXIST) as the error.
func (c *nlConn) do(m *nlMsg) error {
	seq := nlSeq.Add(1)
	b := m.b
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|unix.NLM_F_ACK|m.flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	if err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, msg := range msgs {
			if msg.Header.Seq != seq || msg.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(msg.Data) < 4 {
				return fmt.Errorf("netlink: short error message")
			}
			if errno := int32(binary.NativeEndian.Uint32(msg.Data[:4])); errno != 0 {
				return unix.Errno(-errno)
			}
			return nil
		}
	}
}

// nlMsg builds one netlink request: a header, a fixed family struct and
// attributes.
type nlMsg struct {
	b     []byte
	flags uint16
}

func newMsg(typ, flags uint16, family any) *nlMsg {
	m := &nlMsg{b: make([]byte, unix.SizeofNlMsghdr, 256), flags: flags}
	binary.NativeEndian.PutUint16(m.b[4:6], typ)
	m.put(family)
	return m
}

// put appends a fixed-size struct (ifinfomsg, ifaddrmsg, rtmsg) as is.
func (m *nlMsg) put(v any) {
	var raw []byte
	switch v := v.(type) {
	case *unix.IfInfomsg:
		raw = unsafe.Slice((*byte)(unsafe.Pointer(v)), unix.SizeofIfInfomsg)
	case *unix.IfAddrmsg:
		raw = unsafe.Slice((*byte)(unsafe.Pointer(v)), unix.SizeofIfAddrmsg)
	case *unix.RtMsg:
		raw = unsafe.Slice((*byte)(unsafe.Pointer(v)), unix.SizeofRtMsg)
	default:
		panic(fmt.Sprintf("netlink: cannot put %T", v))
	}
	m.b = append(m.b, raw...)
	m.align()
}

func (m *nlMsg) align() {
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
}

func (m *nlMsg) attr(typ uint16, data []byte) {
	m.b = binary.NativeEndian.AppendUint16(m.b, uint16(4+len(data)))
	m.b = binary.NativeEndian.AppendUint16(m.b, typ)
	m.b = append(m.b, data...)
	m.align()
}

func (m *nlMsg) str(typ uint16, s string) { m.attr(typ, append([]byte(s), 0)) }

func (m *nlMsg) u32(typ uint16, v uint32) {
	m.attr(typ, binary.NativeEndian.AppendUint32(nil, v))
}

// nest appends a nested attribute whose content fill writes.
func (m *nlMsg) nest(typ uint16, fill func()) {
	start := len(m.b)
	m.attr(typ|unix.NLA_F_NESTED, nil)
	fill()
	binary.NativeEndian.PutUint16(m.b[start:start+2], uint16(len(m.b)-start))
}

// newBridge creates bridge name, down and without ports.
func (c *nlConn) newBridge(name string) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.IfInfomsg{Family: unix.AF_UNSPEC})
	m.str(unix.IFLA_IFNAME, name)
	m.nest(unix.IFLA_LINKINFO, func() { m.str(unix.IFLA_INFO_KIND, "bridge") })
	return c.do(m)
}

// newVeth creates a veth pair: host, up and a port of the bridge with
// index master, and its peer peerName inside the network namespace of
// process pid (which must not have been reaped: the pid cannot be reused
// before), down.
func (c *nlConn) newVeth(host string, master int, peerName string, pid int) error {
	m := newMsg(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL,
		&unix.IfInfomsg{Family: unix.AF_UNSPEC, Flags: unix.IFF_UP, Change: unix.IFF_UP})
	m.str(unix.IFLA_IFNAME, host)
	m.u32(unix.IFLA_MASTER, uint32(master))
	m.nest(unix.IFLA_LINKINFO, func() {
		m.str(unix.IFLA_INFO_KIND, "veth")
		m.nest(unix.IFLA_INFO_DATA, func() {
			m.nest(vethInfoPeer, func() {
				m.put(&unix.IfInfomsg{Family: unix.AF_UNSPEC})
				m.str(unix.IFLA_IFNAME, peerName)
				m.u32(unix.IFLA_NET_NS_PID, uint32(pid))
			})
		})
	})
	return c.do(m)
}

// setUp brings the link with index up.
func (c *nlConn) setUp(index int) error {
	m := newMsg(unix.RTM_NEWLINK, 0,
		&unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index), Flags: unix.IFF_UP, Change: unix.IFF_UP})
	return c.do(m)
}

// isolatePort sets the bridge port flag "isolated" on the port with index:
// isolated ports exchange no frames with one another, only with the
// bridge itself and non-isolated ports (there are none).
func (c *nlConn) isolatePort(index int) error {
	m := newMsg(unix.RTM_SETLINK, 0, &unix.IfInfomsg{Family: unix.AF_BRIDGE, Index: int32(index)})
	m.nest(unix.IFLA_PROTINFO, func() { m.attr(unix.IFLA_BRPORT_ISOLATED, []byte{1}) })
	return c.do(m)
}

// delLink deletes the link name (both ends, for a veth).
func (c *nlConn) delLink(name string) error {
	m := newMsg(unix.RTM_DELLINK, 0, &unix.IfInfomsg{Family: unix.AF_UNSPEC})
	m.str(unix.IFLA_IFNAME, name)
	return c.do(m)
}

// addAddr adds the IPv4 address addr (with its prefix length) to the link
// with index.
func (c *nlConn) addAddr(index int, addr netip.Prefix) error {
	m := newMsg(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.IfAddrmsg{
		Family: unix.AF_INET, Prefixlen: uint8(addr.Bits()), Scope: unix.RT_SCOPE_UNIVERSE, Index: uint32(index),
	})
	a := addr.Addr().As4()
	m.attr(unix.IFA_LOCAL, a[:])
	m.attr(unix.IFA_ADDRESS, a[:])
	return c.do(m)
}

// addDefaultRoute routes everything through gw on the link with index.
func (c *nlConn) addDefaultRoute(index int, gw netip.Addr) error {
	m := newMsg(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, &unix.RtMsg{
		Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
		Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST,
	})
	g := gw.As4()
	m.attr(unix.RTA_GATEWAY, g[:])
	m.u32(unix.RTA_OIF, uint32(index))
	return c.do(m)
}

// ifIndex returns the index of the interface name in the calling thread's
// network namespace (an ioctl: no dump of every link).
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("index of %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
