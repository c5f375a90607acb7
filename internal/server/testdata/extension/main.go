// Command extension is the test program of Lambda extensions: started from
// /opt/extensions/ it is an external extension, which registers for INVOKE
// and SHUTDOWN, subscribes to the Telemetry API and appends what it gets
// to /tmp/ext-record (and its SHUTDOWN to its stdout); started as a
// function's bootstrap it answers every invocation with that record.
// EXT_MODE (the function's environment, which extensions share) makes the
// extension misbehave: crash-invoke exits on INVOKE, init-error and
// exit-error post those errors, never-register sleeps, exit-before-register
// exits at once; function-timeout
// makes the function run past its timeout; bench records nothing and does
// not subscribe, bench-telemetry subscribes but records nothing, and the
// function answers "ok" (BenchmarkExtensions).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

const recordFile = "/tmp/ext-record"

func main() {
	if strings.HasPrefix(os.Args[0], "/opt/extensions/") {
		if err := extension(); err != nil {
			fmt.Println("extension failed:", err)
			os.Exit(1)
		}
		return
	}
	lambda.Start(func(ctx context.Context) (string, error) {
		if strings.HasPrefix(os.Getenv("EXT_MODE"), "bench") {
			return "ok", nil
		}
		fmt.Println("function says hello")
		if os.Getenv("EXT_MODE") == "function-timeout" {
			deadline, _ := ctx.Deadline()
			time.Sleep(time.Until(deadline) + 5*time.Second) // past the function's timeout
		}
		b, err := os.ReadFile(recordFile)
		return string(b), err
	})
}

var mu sync.Mutex

func record(format string, args ...any) {
	if strings.HasPrefix(os.Getenv("EXT_MODE"), "bench") {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(recordFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Println("record:", err)
		return
	}
	fmt.Fprintf(f, format+"\n", args...)
	f.Close()
}

func extension() error {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API")
	mode := os.Getenv("EXT_MODE")
	switch mode {
	case "never-register":
		time.Sleep(time.Hour)
	case "exit-before-register":
		fmt.Println("extension gives up")
		os.Exit(2)
	}
	name := os.Args[0][len("/opt/extensions/"):]
	req, _ := http.NewRequest("POST", api+"/2020-01-01/extension/register", strings.NewReader(`{"events":["INVOKE","SHUTDOWN"]}`))
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Lambda-Extension-Identifier")
	if resp.StatusCode != 200 || id == "" {
		return fmt.Errorf("register: %d %s", resp.StatusCode, body)
	}
	record("REGISTERED %s", body)
	post := func(path, errType string) {
		req, _ := http.NewRequest("POST", api+path, strings.NewReader(`{"errorMessage":"test extension fails","errorType":"`+errType+`"}`))
		req.Header.Set("Lambda-Extension-Identifier", id)
		req.Header.Set("Lambda-Extension-Function-Error-Type", errType)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if mode == "init-error" {
		post("/2020-01-01/extension/init/error", "Extension.TestInitFailed")
		return nil
	}

	if mode == "bench" {
		return events(api, id, mode, post)
	}
	// The telemetry listener, on the sandbox's loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:4243")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var events []struct {
			Type   string          `json:"type"`
			Record json.RawMessage `json:"record"`
		}
		if err := json.NewDecoder(r.Body).Decode(&events); err != nil {
			record("TELEMETRY-BAD %v", err)
		}
		for _, ev := range events {
			var rec struct {
				RequestID string `json:"requestId"`
			}
			_ = json.Unmarshal(ev.Record, &rec)
			var line string
			_ = json.Unmarshal(ev.Record, &line)
			record("TELEMETRY %s %s%s", ev.Type, rec.RequestID, line)
		}
	}))
	sub := `{"schemaVersion":"2022-12-13","types":["platform","function","extension"],"buffering":{"timeoutMs":25},
		"destination":{"protocol":"HTTP","URI":"http://sandbox.localdomain:4243/telemetry"}}`
	req, _ = http.NewRequest("PUT", api+"/2022-07-01/telemetry", bytes.NewReader([]byte(sub)))
	req.Header.Set("Lambda-Extension-Identifier", id)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	record("SUBSCRIBED %d %s", resp.StatusCode, body)
	return events(api, id, mode, post)
}

// events is the extension's loop over /event/next.
func events(api, id, mode string, post func(path, errType string)) error {
	for {
		req, _ := http.NewRequest("GET", api+"/2020-01-01/extension/event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var ev struct {
			EventType, RequestID, ShutdownReason string
			DeadlineMs                           int64
		}
		err = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		if err != nil {
			return err
		}
		switch ev.EventType {
		case "INVOKE":
			record("INVOKE %s", ev.RequestID)
			if mode == "" {
				fmt.Println("ext: got INVOKE", ev.RequestID)
			}
			switch mode {
			case "crash-invoke":
				os.Exit(3)
			case "exit-error":
				post("/2020-01-01/extension/exit/error", "Extension.TestExitFailed")
				return nil
			}
		case "SHUTDOWN":
			fmt.Printf("ext: SHUTDOWN %s in %d ms\n", ev.ShutdownReason, ev.DeadlineMs-time.Now().UnixMilli())
			return nil
		}
	}
}
