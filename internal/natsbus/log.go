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
	n.l.Log(context.Background(), level, msg)
}

func (n natsLogger) Noticef(format string, v ...any) { n.log(slog.LevelDebug, format, v) }
func (n natsLogger) Warnf(format string, v ...any)   { n.log(slog.LevelWarn, format, v) }
func (n natsLogger) Errorf(format string, v ...any)  { n.log(slog.LevelError, format, v) }

// Fatalf is an error the NATS server does not go on from; the node's
// health check (the bus's Check) then reports it.
func (n natsLogger) Fatalf(format string, v ...any) { n.log(slog.LevelError, format, v) }
func (n natsLogger) Debugf(format string, v ...any) { n.log(slog.LevelDebug-4, format, v) }
func (n natsLogger) Tracef(format string, v ...any) { n.log(slog.LevelDebug-8, format, v) }
