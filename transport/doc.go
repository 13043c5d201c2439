// Package transport carries a sluice session between the agent and the edge:
// plain TCP or TLS, with the socket tuned for one long-lived multiplexed
// connection.
//
// # Dialing and listening
//
// A [Dialer] opens the agent's connection ([NewDialer]); [Listen] opens the
// edge's listener. Both take [TCPOptions] ([DefaultTCPOptions] is right for a
// tunnel) and an optional *tls.Config built from [ServerTLS] or [ClientTLS].
// Accepted TLS connections are not yet handshaken: call [Handshake] with a
// deadline in the connection's own goroutine, so one slow client cannot stall
// the accept loop.
//
// # Why TLS 1.3 only
//
// Both ends are sluice, so there is no old peer to stay compatible with.
// TLS 1.3 has one round trip handshakes, only AEAD cipher suites with forward
// secrecy, encrypts the server certificate, and leaves no cipher or version
// choices to get wrong. A TLS 1.2 peer is refused during the handshake.
//
// # What a pin hashes
//
// A pin ([ClientTLS].Pin, [Pin], [PinFile]) is the SHA-256 of the server leaf
// certificate's DER-encoded SubjectPublicKeyInfo, written as hex (64 digits,
// colons between bytes allowed, any case). Hashing the public key rather than
// the whole certificate keeps the pin valid when the certificate is renewed
// with the same key, which is the common case for a self-hosted edge; only a
// key rotation needs a new pin. With a pin and no CA file, the pin alone is the
// server's identity: the chain, names and expiry are not checked, as with SSH
// host keys. With both, both must pass.
//
// # Linux socket options
//
// On Linux the options are set with setsockopt (TCP_NODELAY, SO_KEEPALIVE,
// TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, SO_SNDBUF, SO_RCVBUF,
// TCP_NOTSENT_LOWAT). Elsewhere the portable subset goes through the net
// package and TCP_NOTSENT_LOWAT is ignored.
package transport
