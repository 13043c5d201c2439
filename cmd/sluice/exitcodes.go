package main

import (
	"fmt"
	"strings"
)

// Exit codes, so scripts can react to why sluice stopped. exitCodeList is
// the one description of them: `sluice -h` prints it and the README's list
// is checked against it.
const (
	exitOK          = 0
	exitFailure     = 1 // anything else: see the message
	exitUsage       = 2 // bad flag, argument or config file
	exitAuth        = 3 // the edge rejected the token or speaks another protocol version
	exitUnreachable = 4 // the edge could not be reached, or its TLS identity could not be verified
	exitConflict    = 5 // the name, hostname or TCP/UDP port is held by another agent, was taken over, or a tunnel limit is reached
)

var exitCodeList = []struct {
	code    int
	meaning string
}{
	{exitOK, "success, including a stop by SIGINT or SIGTERM"},
	{exitFailure, "any other failure: the message says what happened"},
	{exitUsage, "bad flag, argument or config file (also a PROXY protocol setting the tunnel cannot carry)"},
	{exitAuth, "the edge rejected the token (or removed it on a reload, or its tokens file forbids the name or port), or it speaks another protocol version"},
	{exitUnreachable, "the edge could not be reached (within --connect-timeout), its TLS identity could not be verified, or the address answered as something else (an HTTP server, SSH, TLS where plain was expected or the reverse)"},
	{exitConflict, "the name, hostname or TCP/UDP port belongs to another agent, was taken over by --takeover, or a tunnel limit is reached"},
	{exitSecondInterrupt, "a second SIGINT (Ctrl-C) during shutdown"},
	{exitSecondTerminate, "a second SIGTERM during shutdown"},
}

// exitCodesText is the list for `sluice -h`, wrapped to 80 columns.
func exitCodesText() string {
	var b strings.Builder
	for _, e := range exitCodeList {
		line := fmt.Sprintf("  %-4d", e.code)
		for _, w := range strings.Fields(e.meaning) {
			if len(line)+1+len(w) > 79 && len(line) > 6 {
				b.WriteString(line + "\n")
				line = strings.Repeat(" ", 6)
			} else if len(line) > 6 {
				line += " "
			}
			line += w
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// exitCodesMarkdown is the same list as the README writes it.
func exitCodesMarkdown() string {
	var b strings.Builder
	for _, e := range exitCodeList {
		fmt.Fprintf(&b, "- `%d` %s\n", e.code, e.meaning)
	}
	return b.String()
}
