package server

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// slogErrorLog routes net/http's own error lines (TLS noise, header timeouts)
// into the structured log at debug level, where they belong for an edge facing
// the whole internet.
func slogErrorLog(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Log(context.Background(), slog.LevelDebug, strings.TrimSpace(string(p)), "source", "net/http")
	return len(p), nil
}
