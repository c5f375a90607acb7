// Command kitchensink is a test function built on unmodified aws-lambda-go.
// Its event says what to do, so one binary exercises every runtime outcome.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type event struct {
	Action string `json:"action"`
	Name   string `json:"name"`
	Ms     int    `json:"ms"`
	Bytes  int    `json:"bytes"`
	Print  string `json:"print"`
	Code   int    `json:"code"`
	Path   string `json:"path"`
	Addr   string `json:"addr"`
}

var coldStarts int

func handle(ctx context.Context, raw json.RawMessage) (any, error) {
	var e event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, err
	}
	if e.Print != "" {
		fmt.Println(e.Print)
	}
	lc, _ := lambdacontext.FromContext(ctx)
	switch e.Action {
	case "", "hello":
		name := e.Name
		if name == "" {
			name = "world"
		}
		return map[string]string{"message": "hello " + name}, nil
	case "echo":
		return raw, nil
	case "now":
		// When the handler started, for event-to-start latency.
		fmt.Printf("now=%d\n", time.Now().UnixNano())
		return nil, nil
	case "context":
		dl, _ := ctx.Deadline()
		return map[string]any{
			"requestId": lc.AwsRequestID, "arn": lc.InvokedFunctionArn,
			"clientContext": lc.ClientContext.Custom, "deadlineInMs": time.Until(dl).Milliseconds(),
			"coldStarts": coldStarts,
		}, nil
	case "env":
		return os.Environ(), nil
	case "whoami":
		host, _ := os.Hostname()
		return map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "pid": os.Getpid(), "hostname": host}, nil
	case "write":
		err := os.WriteFile(e.Path, []byte("x"), 0o644)
		if err != nil {
			return map[string]any{"ok": false, "err": err.Error()}, nil
		}
		return map[string]any{"ok": true}, nil
	case "statfs":
		var st syscall.Statfs_t
		if err := syscall.Statfs(e.Path, &st); err != nil {
			return nil, err
		}
		// What the function can write: /tmp is ext4, whose metadata takes
		// some of its blocks beside the EphemeralStorage it holds.
		return map[string]any{"bytes": st.Bavail * uint64(st.Bsize)}, nil
	case "readdir":
		ents, err := os.ReadDir(e.Path)
		if err != nil {
			return nil, err
		}
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		return names, nil
	case "error":
		return nil, errors.New("something went wrong")
	case "panic":
		panic("kitchensink panicked")
	case "exit":
		os.Exit(e.Code)
	case "sleep":
		// Path, when set, is written first: the test sees the invocation
		// in flight (through /proc/<pid>/root) without guessing with time.
		if e.Path != "" {
			if err := os.WriteFile(e.Path, []byte("sleeping"), 0o644); err != nil {
				return nil, err
			}
		}
		// A test ends the sleep early by creating Path+".release".
		for end := time.Now().Add(time.Duration(e.Ms) * time.Millisecond); time.Now().Before(end); {
			if e.Path != "" {
				if _, err := os.Stat(e.Path + ".release"); err == nil {
					return map[string]string{"slept": "released"}, nil
				}
			}
			time.Sleep(min(10*time.Millisecond, time.Until(end)))
		}
		return map[string]string{"slept": fmt.Sprint(e.Ms)}, nil
	case "exitafter":
		// Answers, then the runtime exits while its environment is idle.
		go func() {
			time.Sleep(time.Duration(e.Ms) * time.Millisecond)
			os.Exit(0)
		}()
		return map[string]bool{"exiting": true}, nil
	case "dial":
		// TCP connect to addr (ms: timeout, 2 s by default) and read what
		// the peer says first, if anything, within the timeout.
		ms := e.Ms
		if ms == 0 {
			ms = 2000
		}
		c, err := net.DialTimeout("tcp", e.Addr, time.Duration(ms)*time.Millisecond)
		if err != nil {
			return map[string]any{"ok": false, "err": err.Error()}, nil
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
		b, _ := io.ReadAll(io.LimitReader(c, 256))
		return map[string]any{"ok": true, "reply": string(b)}, nil
	case "interfaces":
		// Every interface with its addresses, e.g. {"lo":["127.0.0.1/8"]}.
		ifs, err := net.Interfaces()
		if err != nil {
			return nil, err
		}
		out := map[string][]string{}
		for _, i := range ifs {
			addrs, _ := i.Addrs()
			out[i.Name] = []string{}
			for _, a := range addrs {
				out[i.Name] = append(out[i.Name], a.String())
			}
		}
		return out, nil
	case "listen":
		// A listener on addr for the rest of the environment's life that
		// greets every connection; answers once it listens.
		ln, err := net.Listen("tcp", e.Addr)
		if err != nil {
			return map[string]any{"ok": false, "err": err.Error()}, nil
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("hello from " + c.LocalAddr().String()))
				c.Close()
			}
		}()
		return map[string]any{"ok": true}, nil
	case "big":
		return strings.Repeat("a", e.Bytes), nil
	case "alloc":
		var keep [][]byte
		for i := 0; i < e.Bytes>>20; i++ {
			b := make([]byte, 1<<20)
			// One write per page: what costs is the memory, not the CPU
			// (a 128 MB function has 1/14 of a CPU).
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		return len(keep), nil
	}
	return nil, fmt.Errorf("unknown action %q", e.Action)
}

func main() {
	coldStarts++
	switch os.Getenv("KITCHENSINK_INIT") {
	case "exit":
		fmt.Println("init failing on purpose")
		os.Exit(2)
	case "hang":
		time.Sleep(time.Hour)
	}
	lambda.Start(handle)
}
