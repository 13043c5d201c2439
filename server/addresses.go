package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The three kinds of public address the registry leases (hostnames, TCP
// ports, UDP ports), their keys, and the errors that refuse a claim on one.

// Registry errors, matched with errors.Is.
var (
	// errNameTaken means another agent holds the name, or held it moments
	// ago and may come back for it.
	errNameTaken = errors.New("name is held by another agent")
	// errPortTaken means another agent holds the TCP or UDP port.
	errPortTaken = errors.New("port is held by another agent")
)

// heldError refuses a claim on a key a live agent serves.
type heldError struct {
	Key       string
	Remote    string    // the holder's address
	OwnerName string    // the holder's owner
	Since     time.Time // when the holder got it
	SameOwner bool      // the claimant has the same owner (takeover or pooling would work)
	Pooled    bool      // the holder shares it
}

func (e *heldError) Error() string {
	what := "choose another name or port, or stop that agent"
	if e.SameOwner {
		if e.Pooled {
			what = "choose another, stop that agent, or ask to pool it too to share it"
		} else {
			what = "choose another, stop that agent, ask to take it over if that agent is stuck, or run both agents with pooling to share it"
		}
	}
	since := e.Since.UTC().Format("2006-01-02 15:04:05 UTC")
	return fmt.Sprintf("%s is held by a live agent at %s (owner %s) since %s (%s ago): %s",
		keyLabel(e.Key), e.Remote, e.OwnerName, since, time.Since(e.Since).Round(time.Second), what)
}

func (e *heldError) Is(target error) bool { return target == keyErr(e.Key) }

// reservedError refuses a claim on a key whose holder went away moments ago
// and may come back for it.
type reservedError struct {
	Key       string
	OwnerName string
	Until     time.Time
}

func (e *reservedError) Error() string {
	return fmt.Sprintf("%s is reserved for owner %s, whose agent disconnected, until %s: choose another name or port",
		keyLabel(e.Key), e.OwnerName, e.Until.UTC().Format("2006-01-02 15:04:05 UTC"))
}

func (e *reservedError) Is(target error) bool { return target == keyErr(e.Key) }

func keyErr(key string) error {
	if strings.HasPrefix(key, "port:") || strings.HasPrefix(key, "udp:") {
		return errPortTaken
	}
	return errNameTaken
}

func keyLabel(key string) string {
	if p, ok := strings.CutPrefix(key, "port:"); ok {
		return "TCP port " + p
	}
	if p, ok := strings.CutPrefix(key, "udp:"); ok {
		return "UDP port " + p
	}
	return strings.TrimPrefix(key, "host:")
}

// The keys of the three kinds of public address: a hostname, a TCP port
// ("port:", the key leases have always had) and a UDP port. TCP and UDP
// ports are separate name spaces on a host.
func hostKey(host string) string { return "host:" + strings.ToLower(host) }

func portKey(port int) string { return "port:" + strconv.Itoa(port) }

func udpKey(port int) string { return "udp:" + strconv.Itoa(port) }
