package natsbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// natsLogger carries the embedded NATS server's log lines into the node's
// slog logger (component=nats), so its warnings and errors (a store that
// cannot write, a stream that cannot recover) reach the operator.
// Notices (its start-up banner, one line a setting) are Debug: the node
// logs its own start.
type natsLogger struct{ l *slog.Logger }

func (n natsLogger) log(level slog.Level, format string, v []any) {
	if !n.l.Enabled(context.Background(), level) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if msg == "" || strings.Trim(msg, "-_ /\\|") == "" { // banner art
		return
	}
	if explained, ok := explainRoute(msg); ok {
		n.l.Log(context.Background(), slog.LevelError, explained, "nats", msg)
		return
	}
	n.l.Log(context.Background(), level, msg)
}

// routeRefusals are the NATS server's lines about a route to a peer it or
// the peer refused, and what they mean to the operator of a cluster of Owl
// nodes (docs/cluster.md): each is logged as an error with its sentence,
// the server's own line alongside.
var routeRefusals = []struct {
	all     []string
	meaning string
}{
	{[]string{"cluster name", "does not match"},
		"a node was refused from the cluster: its cluster name differs (every node needs the same --cluster-name)"},
	{[]string{"rid:", "authentication error"},
		"a node was refused from the cluster: its route credentials are wrong (every node needs the same --cluster-user and OWL_CLUSTER_PASSWORD)"},
	{[]string{"Route Error", "Authorization Violation"},
		"this node was refused by a peer: the route credentials differ (every node needs the same --cluster-user and OWL_CLUSTER_PASSWORD)"},
	{[]string{"rid:", "TLS", "error"},
		"a route between nodes failed its TLS handshake (every node needs a certificate signed by the --cluster-tls-ca the others trust)"},
}

// explainRoute is the operator's sentence for a route refusal, if msg is one.
func explainRoute(msg string) (string, bool) {
next:
	for _, r := range routeRefusals {
		for _, s := range r.all {
			if !strings.Contains(msg, s) {
				continue next
			}
		}
		return r.meaning, true
	}
	return "", false
}

func (n natsLogger) Noticef(format string, v ...any) { n.log(slog.LevelDebug, format, v) }
func (n natsLogger) Warnf(format string, v ...any)   { n.log(slog.LevelWarn, format, v) }
func (n natsLogger) Errorf(format string, v ...any)  { n.log(slog.LevelError, format, v) }

// Fatalf is an error the NATS server does not go on from; the node's
// health check (the bus's Check) then reports it.
func (n natsLogger) Fatalf(format string, v ...any) { n.log(slog.LevelError, format, v) }
func (n natsLogger) Debugf(format string, v ...any) { n.log(slog.LevelDebug-4, format, v) }
func (n natsLogger) Tracef(format string, v ...any) { n.log(slog.LevelDebug-8, format, v) }
