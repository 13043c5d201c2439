package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// gRPC status codes the agent answers with itself.
const (
	grpcCanceled         = 1
	grpcDeadlineExceeded = 4
	grpcUnavailable      = 14
)

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

// withGRPCDeadline bounds a gRPC call by its grpc-timeout, as the service
// will: when the service gives up at the deadline and resets the stream, the
// agent then knows to answer DEADLINE_EXCEEDED rather than a failure.
func withGRPCDeadline(r *http.Request) *http.Request {
	d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	if !ok {
		return r
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	// The request's own context ends when the handler returns, which
	// releases this timer too.
	context.AfterFunc(r.Context(), cancel)
	return r.WithContext(ctx)
}

// parseGRPCTimeout reads the grpc-timeout header: at most 8 digits and a
// unit (H, M, S, m, u, n).
func parseGRPCTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// grpcError answers a gRPC call the local service did not answer with a
// trailers-only gRPC status.
func grpcError(w http.ResponseWriter, r *http.Request, local string, err error) {
	code, msg := grpcUnavailable, fmt.Sprintf("sluice agent: the local gRPC service at %s did not answer: %v", local, err)
	ctx := r.Context()
	switch {
	case pastDeadline(ctx):
		code, msg = grpcDeadlineExceeded, "sluice agent: deadline exceeded before the local service answered"
	case errors.Is(ctx.Err(), context.Canceled):
		code, msg = grpcCanceled, "sluice agent: the call was cancelled"
	case certRefused(err):
		msg = fmt.Sprintf("sluice agent: the TLS certificate of the local gRPC service at %s is not trusted (%v): %s", local, err, upstreamTLSFix)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("sluice agent: the local gRPC service at %s refused the connection: start it, or check the port given to sluice", local)
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", url.PathEscape(msg))
	w.WriteHeader(http.StatusOK)
}

func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}
