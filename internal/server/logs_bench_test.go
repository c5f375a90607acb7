package server_test

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkLogFollow measures how soon a follower (GET .../logs?follow=true,
// what owl logs -f reads) has a line after the function wrote it: a warm
// function prints its clock (now=<ns>) and the follower's clock at the
// line's arrival is compared with it (p50/p99). The same run's warm
// invocation round trip (p50) is the baseline.
//
//	go test -run '^$' -bench BenchmarkLogFollow -benchtime 500x ./internal/server
func BenchmarkLogFollow(b *testing.B) {
	ts := startServer(b, "")
	ts.createKitchensink("bench-follow")
	ts.invoke("bench-follow", `{}`) // warm

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/owl/v1/functions/bench-follow/logs?follow=true", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	arrived := make(chan time.Duration, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			at := time.Now()
			if ns, ok := strings.CutPrefix(sc.Text(), "now="); ok {
				n, _ := strconv.ParseInt(ns, 10, 64)
				arrived <- at.Sub(time.Unix(0, n))
			}
		}
		close(arrived)
	}()

	var follow, roundTrip []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		ts.invoke("bench-follow", `{"action":"now"}`)
		roundTrip = append(roundTrip, time.Since(start))
		select {
		case d, ok := <-arrived:
			if !ok {
				b.Fatal("the follow ended")
			}
			follow = append(follow, d)
		case <-time.After(time.Minute):
			b.Fatal("no line followed within a minute")
		}
	}
	b.StopTimer()
	slices.Sort(follow)
	slices.Sort(roundTrip)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(follow[len(follow)/2]), "follow-p50-ms")
	b.ReportMetric(ms(follow[len(follow)*99/100]), "follow-p99-ms")
	b.ReportMetric(ms(roundTrip[len(roundTrip)/2]), "invoke-p50-ms")
}
