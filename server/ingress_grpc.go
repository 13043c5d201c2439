package server

import (
	"net/http"
	"strconv"
	"strings"
)

// isGRPC reports whether r is a gRPC call (its content type is
// application/grpc, with or without a +codec suffix).
func isGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return r.ProtoMajor == 2 && (ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;"))
}

// gRPC status codes the edge answers with (grpc/codes).
const (
	grpcUnknown           = 2
	grpcNotFound          = 5
	grpcPermissionDenied  = 7
	grpcResourceExhausted = 8
	grpcUnimplemented     = 12
	grpcUnavailable       = 14
	grpcUnauthenticated   = 16
)

// grpcCode is the gRPC status matching the edge's HTTP answer, as the gRPC
// HTTP mapping does for the ones it names.
func grpcCode(httpCode int) int {
	switch httpCode {
	case http.StatusNotFound:
		return grpcNotFound
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return grpcUnavailable
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusTooManyRequests:
		return grpcResourceExhausted
	case http.StatusMethodNotAllowed:
		return grpcUnimplemented
	}
	return grpcUnknown
}

// grpcStatus answers a gRPC call with a trailers-only response: HTTP 200,
// and the status and message in the headers, where a gRPC client reads
// them instead of failing on an HTML body.
func grpcStatus(w http.ResponseWriter, httpCode int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(grpcCode(httpCode)))
	h.Set("Grpc-Message", grpcEncode(msg))
	w.WriteHeader(http.StatusOK)
}

// grpcEncode percent-encodes a grpc-message: bytes outside printable ASCII,
// and '%' itself.
func grpcEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
