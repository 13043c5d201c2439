package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki is a set of certificate files made at test time.
type pki struct {
	dir                  string
	ca, otherCA          *CA
	caFile, otherCAFile  string
	serverCert           tls.Certificate
	serverCrt, serverKey string
	clientCrt, clientKey string // issued by ca
	rogueCrt, rogueKey   string // issued by otherCA
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.ca, err = NewCA("sluice test CA")
	must(err)
	p.otherCA, err = NewCA("some other CA")
	must(err)
	p.caFile = filepath.Join(p.dir, "ca.crt")
	must(p.ca.WriteCAFile(p.caFile))
	p.otherCAFile = filepath.Join(p.dir, "other-ca.crt")
	must(p.otherCA.WriteCAFile(p.otherCAFile))

	p.serverCert, err = p.ca.Issue("edge.test", "127.0.0.1", "::1")
	must(err)
	p.serverCrt, p.serverKey, err = WritePEMFiles(p.dir, "server", p.serverCert)
	must(err)
	client, err := p.ca.Issue("agent-1")
	must(err)
	p.clientCrt, p.clientKey, err = WritePEMFiles(p.dir, "client", client)
	must(err)
	rogue, err := p.otherCA.Issue("agent-rogue")
	must(err)
	p.rogueCrt, p.rogueKey, err = WritePEMFiles(p.dir, "rogue", rogue)
	must(err)
	return p
}

func serverConfig(t testing.TB, s ServerTLS) *tls.Config {
	t.Helper()
	cfg, err := s.Config()
	if err != nil {
		t.Fatalf("ServerTLS.Config: %v", err)
	}
	return cfg
}

// dialTLS dials addr with a client built from c.
func dialTLS(t *testing.T, addr string, c ClientTLS) (*TLSConn, error) {
	t.Helper()
	cfg, err := c.Config()
	if err != nil {
		t.Fatalf("ClientTLS.Config: %v", err)
	}
	d, err := NewDialer(DefaultTCPOptions(), cfg)
	if err != nil {
		t.Fatalf("NewDialer: %v", err)
	}
	conn, err := d.DialContext(testCtx(t), addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return conn.(*TLSConn), nil
}

func TestTLSWithCAFile(t *testing.T) {
	p := newPKI(t)
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverKey}))
	c, err := dialTLS(t, addr, ClientTLS{CAFile: p.caFile})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("negotiated %s, want TLS 1.3", tls.VersionName(v))
	}
	if a := recvAccepted(t, got); a.handshakeErr != nil {
		t.Fatalf("server handshake: %v", a.handshakeErr)
	}
	echo(t, c)
}

func TestTLSServerCertificateInMemory(t *testing.T) {
	p := newPKI(t)
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{Certificate: &p.serverCert}))
	c, err := dialTLS(t, addr, ClientTLS{CAFile: p.caFile})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	recvAccepted(t, got)
	echo(t, c)
}

func TestTLSWrongCARefused(t *testing.T) {
	p := newPKI(t)
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverKey}))
	_, err := dialTLS(t, addr, ClientTLS{CAFile: p.otherCAFile})
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("dial with wrong CA: err = %v, want x509.UnknownAuthorityError", err)
	}
	if !strings.Contains(err.Error(), "not signed by a CA in the configured CA file") {
		t.Fatalf("error does not say what to do: %v", err)
	}
	if a := recvAccepted(t, got); a.handshakeErr == nil {
		t.Fatal("server handshake succeeded with a client that refused it")
	}
}

// TestTLSNoCAFileSaysSystemStore: without a CA file the certificate is
// checked against the system's store, and the error says so rather than
// blaming a CA file nobody gave.
func TestTLSNoCAFileSaysSystemStore(t *testing.T) {
	p := newPKI(t)
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverKey}))
	_, err := dialTLS(t, addr, ClientTLS{})
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Fatalf("dial without a CA file: err = %v, want x509.UnknownAuthorityError", err)
	}
	if !strings.Contains(err.Error(), "not signed by a CA in the system's trusted CAs (no CA file was given)") || strings.Contains(err.Error(), "configured CA file") {
		t.Fatalf("error does not say which CAs were asked: %v", err)
	}
	recvAccepted(t, got)
}

func TestTLSServerName(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name, serverName string
		ok               bool
	}{
		{"name in certificate", "edge.test", true},
		{"dialed IP in certificate", "", true},
		{"name not in certificate", "other.test", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{Certificate: &p.serverCert}))
			c, err := dialTLS(t, addr, ClientTLS{CAFile: p.caFile, ServerName: tt.serverName})
			recvAccepted(t, got)
			if !tt.ok {
				var he x509.HostnameError
				if !errors.As(err, &he) || !strings.Contains(err.Error(), "set the server name") {
					t.Fatalf("err = %v, want a hostname error saying what to do", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if tt.serverName != "" && c.ConnectionState().ServerName != tt.serverName {
				t.Fatalf("SNI = %q, want %q", c.ConnectionState().ServerName, tt.serverName)
			}
			echo(t, c)
		})
	}
}

func TestTLSPin(t *testing.T) {
	p := newPKI(t)
	pin := Pin(p.serverCert.Leaf)
	other, err := p.ca.Issue("edge.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		client  ClientTLS
		wantErr string
	}{
		{"pin with colons", ClientTLS{Pin: pin}, ""},
		{"pin upper case without colons", ClientTLS{Pin: strings.ToUpper(strings.ReplaceAll(pin, ":", ""))}, ""},
		{"pin of another key", ClientTLS{Pin: Pin(other.Leaf)}, "pin mismatch"},
		{"pin and the right CA", ClientTLS{Pin: pin, CAFile: p.caFile}, ""},
		{"pin right but CA wrong", ClientTLS{Pin: pin, CAFile: p.otherCAFile}, "not signed by a CA"},
		{"pin right but name wrong", ClientTLS{Pin: pin, CAFile: p.caFile, ServerName: "other.test"}, "set the server name"},
		// With a pin alone the name is not checked: the key is the identity.
		{"pin alone ignores name", ClientTLS{Pin: pin, ServerName: "other.test"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{Certificate: &p.serverCert}))
			c, err := dialTLS(t, addr, tt.client)
			recvAccepted(t, got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			echo(t, c)
		})
	}
}

func TestTLSPinMismatchError(t *testing.T) {
	p := newPKI(t)
	other, err := p.otherCA.Issue("edge.test")
	if err != nil {
		t.Fatal(err)
	}
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{Certificate: &p.serverCert}))
	_, err = dialTLS(t, addr, ClientTLS{Pin: Pin(other.Leaf)})
	recvAccepted(t, got)
	var pm *PinMismatchError
	if !errors.As(err, &pm) {
		t.Fatalf("err = %v, want *PinMismatchError", err)
	}
	if pm.Got != Pin(p.serverCert.Leaf) || pm.Want != Pin(other.Leaf) {
		t.Fatalf("PinMismatchError got/want = %s / %s, want %s / %s", pm.Got, pm.Want, Pin(p.serverCert.Leaf), Pin(other.Leaf))
	}
}

func TestPinFileMatchesPin(t *testing.T) {
	p := newPKI(t)
	got, err := PinFile(p.serverCrt)
	if err != nil {
		t.Fatal(err)
	}
	if want := Pin(p.serverCert.Leaf); got != want {
		t.Fatalf("PinFile = %s, want %s", got, want)
	}
	if len(got) != 32*3-1 {
		t.Fatalf("pin %q is not 32 colon-separated bytes", got)
	}
}

func TestParsePin(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{good, true},
		{strings.ToUpper(good), true},
		{" " + good + "\n", true},
		{strings.TrimSuffix(strings.Repeat("ab:", 32), ":"), true},
		{good[:62], false},
		{good + "ab", false},
		{strings.Repeat("zz", 32), false},
		{"", false},
	} {
		_, err := ParsePin(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParsePin(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "64 hex digits") {
			t.Errorf("ParsePin(%q) error does not say the expected form: %v", tt.in, err)
		}
	}
}

func TestTLS12ClientRefused(t *testing.T) {
	p := newPKI(t)
	addr, got := serveOne(t, DefaultTCPOptions(), serverConfig(t, ServerTLS{Certificate: &p.serverCert}))
	_, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", addr, &tls.Config{
		MaxVersion: tls.VersionTLS12,
		RootCAs:    p.ca.Pool(),
		ServerName: "edge.test",
	})
	if err == nil {
		t.Fatal("TLS 1.2-only client connected")
	}
	a := recvAccepted(t, got)
	if a.handshakeErr == nil || !strings.Contains(a.handshakeErr.Error(), "needs TLS 1.3") {
		t.Fatalf("server handshake err = %v, want a refusal that names TLS 1.3", a.handshakeErr)
	}
}

func TestTLS12ServerRefused(t *testing.T) {
	p := newPKI(t)
	// A server that is not ours, capped at TLS 1.2.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{p.serverCert},
		MaxVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.SetDeadline(time.Now().Add(testTimeout))
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	defer func() { ln.Close(); <-done }()
	_, err = dialTLS(t, ln.Addr().String(), ClientTLS{CAFile: p.caFile})
	if err == nil || !strings.Contains(err.Error(), "TLS 1.3") {
		t.Fatalf("dial to a TLS 1.2 server: err = %v, want a refusal that names TLS 1.3", err)
	}
}

func TestVersionBelowTLS13Rejected(t *testing.T) {
	old := &tls.Config{MinVersion: tls.VersionTLS12}
	if _, err := NewDialer(DefaultTCPOptions(), old); err == nil || !strings.Contains(err.Error(), "TLS 1.3") {
		t.Fatalf("NewDialer with TLS 1.2 allowed: err = %v", err)
	}
	if ln, err := Listen(testCtx(t), "127.0.0.1:0", DefaultTCPOptions(), old); err == nil || !strings.Contains(err.Error(), "TLS 1.3") {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("Listen with TLS 1.2 allowed: err = %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name          string
		client        ClientTLS
		wantServerErr string
	}{
		{"client certificate from the client CA", ClientTLS{CAFile: p.caFile, CertFile: p.clientCrt, KeyFile: p.clientKey}, ""},
		{"no client certificate", ClientTLS{CAFile: p.caFile}, "requires a client certificate"},
		{"client certificate from another CA", ClientTLS{CAFile: p.caFile, CertFile: p.rogueCrt, KeyFile: p.rogueKey}, "not signed by a CA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			scfg := serverConfig(t, ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverKey, ClientCAFile: p.caFile})
			addr, got := serveOne(t, DefaultTCPOptions(), scfg)
			c, err := dialTLS(t, addr, tt.client)
			if tt.wantServerErr == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				a := recvAccepted(t, got)
				if a.handshakeErr != nil {
					t.Fatalf("server handshake: %v", a.handshakeErr)
				}
				peers := a.conn.(*TLSConn).ConnectionState().PeerCertificates
				if len(peers) == 0 || peers[0].Subject.CommonName != "agent-1" {
					t.Fatalf("server sees client certificates %v, want agent-1", peers)
				}
				echo(t, c)
				return
			}
			a := recvAccepted(t, got)
			if a.handshakeErr == nil || !strings.Contains(a.handshakeErr.Error(), tt.wantServerErr) {
				t.Fatalf("server handshake err = %v, want one containing %q", a.handshakeErr, tt.wantServerErr)
			}
			// In TLS 1.3 the client finishes its handshake before the
			// server checks the client certificate, so the refusal may
			// reach the client only on its first read.
			if err == nil {
				c.SetDeadline(time.Now().Add(testTimeout))
				if _, err = c.Read(make([]byte, 1)); err == nil {
					t.Fatal("client read succeeded on a connection the server refused")
				}
			}
		})
	}
}

func TestTLSAgainstPlainTCP(t *testing.T) {
	p := newPKI(t)
	cfg, err := (ClientTLS{CAFile: p.caFile}).Config()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewDialer(DefaultTCPOptions(), cfg)
	for _, tt := range []struct {
		name  string
		reply func(net.Conn)
		want  string
	}{
		{"peer answers in plain text", func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) }, "does not speak TLS"},
		{"peer hangs up", func(net.Conn) {}, "closed the connection during the handshake"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln := listenT(t, DefaultTCPOptions(), nil)
			done := make(chan struct{})
			go func() {
				defer close(done)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.SetDeadline(time.Now().Add(testTimeout))
				c.Read(make([]byte, 1024)) // the ClientHello
				tt.reply(c)
				c.Close()
			}()
			defer func() { ln.Close(); <-done }()
			_, err := d.DialContext(testCtx(t), ln.Addr().String())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("TLS dial to a plain TCP server: err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	p := newPKI(t)
	garbage := filepath.Join(p.dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("this is not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	derFile := filepath.Join(p.dir, "ca.der")
	if err := os.WriteFile(derFile, p.ca.Cert.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(p.dir, "nope.crt")
	for _, tt := range []struct {
		name string
		cfg  func() error
		want []string
	}{
		{"server cert missing", func() error { _, err := ServerTLS{CertFile: missing, KeyFile: p.serverKey}.Config(); return err },
			[]string{"not found", missing, "check the path"}},
		{"server key missing", func() error { _, err := ServerTLS{CertFile: p.serverCrt, KeyFile: missing}.Config(); return err },
			[]string{"private key", "not found", missing}},
		{"server cert not PEM", func() error { _, err := ServerTLS{CertFile: garbage, KeyFile: p.serverKey}.Config(); return err },
			[]string{"no PEM CERTIFICATE", garbage}},
		{"server key is a certificate", func() error { _, err := ServerTLS{CertFile: p.serverCrt, KeyFile: p.serverCrt}.Config(); return err },
			[]string{"no PEM PRIVATE KEY", "not the certificate"}},
		{"server key of another certificate", func() error { _, err := ServerTLS{CertFile: p.serverCrt, KeyFile: p.clientKey}.Config(); return err },
			[]string{"do not form a pair", "use the key the certificate was issued for"}},
		{"server without certificate", func() error { _, err := ServerTLS{}.Config(); return err },
			[]string{"needs a certificate"}},
		{"server cert without key", func() error { _, err := ServerTLS{CertFile: p.serverCrt}.Config(); return err },
			[]string{"both a certificate file and a key file"}},
		{"server cert in memory and in files", func() error {
			_, err := ServerTLS{Certificate: &p.serverCert, CertFile: p.serverCrt, KeyFile: p.serverKey}.Config()
			return err
		}, []string{"give one"}},
		{"client CA missing", func() error {
			_, err := ServerTLS{Certificate: &p.serverCert, ClientCAFile: missing}.Config()
			return err
		},
			[]string{"client CA", "not found"}},
		{"CA file not PEM", func() error { _, err := ClientTLS{CAFile: derFile}.Config(); return err },
			[]string{"no PEM CERTIFICATE", derFile}},
		{"CA file missing", func() error { _, err := ClientTLS{CAFile: missing}.Config(); return err },
			[]string{"CA file", "not found"}},
		{"client key mismatch", func() error {
			_, err := ClientTLS{CAFile: p.caFile, CertFile: p.clientCrt, KeyFile: p.rogueKey}.Config()
			return err
		}, []string{"client certificate", "do not form a pair"}},
		{"bad pin", func() error { _, err := ClientTLS{Pin: "abc"}.Config(); return err },
			[]string{"64 hex digits"}},
		{"pin of a missing file", func() error { _, err := PinFile(missing); return err },
			[]string{"not found"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
