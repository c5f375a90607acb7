package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestBenchBurst(t *testing.T) {
	f := newFakeOwl(t)
	f.add("sleepy", "provided.al2023")
	var payloads []string
	f.invoke = func(w http.ResponseWriter, _ *http.Request, payload []byte) {
		payloads = append(payloads, string(payload)) // under the fake's lock
		_, _ = w.Write([]byte(`{"message":"hi"}`))
	}
	out, errb, code := runOwl(t, f.srv.URL, "", "bench", "burst", "-f", "sleepy", "-n", "20", "--fresh=false", "--json", "-")
	if code != 0 {
		t.Fatalf("owl bench burst: exit %d\n%s", code, errb)
	}
	var r struct {
		Mode        string `json:"mode"`
		Connections int    `json:"connections"`
		Requests    int    `json:"requests"`
		OK          int    `json:"ok"`
		Burst       struct {
			SleepMS      int  `json:"sleep_ms"`
			Fresh        bool `json:"fresh"`
			PeakInFlight int  `json:"peak_in_flight"`
			Cold         int  `json:"cold"`
			Warm         int  `json:"warm"`
			NoLog        int  `json:"no_log"`
		} `json:"burst"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json -: %v\n%s", err, out)
	}
	// -c defaults to -n, the event to the 1-second sleep.
	if r.Mode != "burst" || r.Connections != 20 || r.Requests != 20 || r.OK != 20 || r.Burst.SleepMS != 1000 || r.Burst.Fresh ||
		r.Burst.Cold+r.Burst.Warm+r.Burst.NoLog != 20 {
		t.Errorf("burst result = %+v", r)
	}
	if len(payloads) != 21 || payloads[0] != `{"name":"owl","sleep_ms":1000}` {
		t.Errorf("%d invocations (want the probe and 20), first event %q", len(payloads), payloads[0])
	}
	if !strings.Contains(errb, "20 invocations started at once") {
		t.Errorf("text output lacks the burst line:\n%s", errb)
	}

	// -c above -n is refused before anything is sent.
	if _, errb, code := runOwl(t, f.srv.URL, "", "bench", "burst", "-f", "sleepy", "-n", "5", "-c", "6"); code == 0 || !strings.Contains(errb, "connections (-c) 6") {
		t.Errorf("burst -n 5 -c 6: exit %d, %s", code, errb)
	}
}

func TestBenchBaselineModes(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no runc
	_, errb, code := runOwl(t, "", "", "bench", "baseline", "--mode", "runc", "-n", "1")
	if code == 0 || !strings.Contains(errb, "apt-get install runc") {
		t.Errorf("baseline --mode runc without runc: exit %d, %s", code, errb)
	}
	_, errb, code = runOwl(t, "", "", "bench", "baseline", "--mode", "sprint")
	if code == 0 || !strings.Contains(errb, "want warm, throughput, burst, exec or runc") {
		t.Errorf("baseline --mode sprint: exit %d, %s", code, errb)
	}
}
