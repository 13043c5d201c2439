package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/agent"
	"github.com/sluicehq/sluice/control"
	"github.com/sluicehq/sluice/server"
)

func TestExplainNamesFlags(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{&server.ConfigError{Pkg: "server", Field: "Tokens", Reason: "none"}, "--token"},
		{&server.ConfigError{Pkg: "server", Field: "TCPPortMax", Reason: "bad"}, "--tcp-ports"},
		{&agent.ConfigError{Pkg: "agent", Field: "Server", Reason: "none"}, "--server"},
		{&agent.ConfigError{Pkg: "agent", Field: "Tunnels[0].RemotePort", Reason: "bad"}, "--remote-port"},
		{&control.Error{Code: control.CodeUnauthorized, Message: "the edge rejected the token"}, "--token"},
		{fmt.Errorf("register: %w", &control.Error{Code: control.CodeNameTaken}), "--name"},
		{&control.Error{Code: control.CodePortTaken}, "--remote-port"},
		{&agent.TLSError{Addr: "x:1", Err: errors.New("unknown authority")}, "--pin"},
		{&agent.TLSError{Addr: "x:1", Err: errors.New("unknown authority")}, "--ca"},
		{&agent.UnreachableError{Addr: "x:1", Err: errors.New("refused")}, "--server"},
		{&agent.UnreachableError{Addr: "x:1", Err: errors.New("refused")}, "--insecure"},
	}
	for _, tc := range cases {
		got := explain(tc.err)
		if !strings.Contains(got.Error(), tc.want) {
			t.Errorf("explain(%v) = %q; want it to name %s", tc.err, got, tc.want)
		}
		if exitCode(got) != exitCode(tc.err) {
			t.Errorf("explain(%v) changed the exit code: %d, was %d", tc.err, exitCode(got), exitCode(tc.err))
		}
	}
}
