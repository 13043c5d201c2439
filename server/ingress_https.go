package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/sluicehq/sluice/internal/cfgerr"
)

// DefaultACMEDirectory is Let's Encrypt's production directory, used when
// HTTPS is on, no static certificate is given and ACMEDirectory is empty.
const DefaultACMEDirectory = acme.LetsEncryptURL

// httpsIngress is the public TLS listener: HTTP/1.1 and h2 (by ALPN) for
// NAME.DOMAIN and exact hostnames, on a static certificate or on
// certificates issued over ACME as names are asked for.
type httpsIngress struct {
	ln     net.Listener
	srv    *http.Server
	issuer *issuer // nil with a static certificate
}

// openHTTPS loads the certificate source and opens the HTTPS listener.
func (s *Server) openHTTPS() error {
	cfg := s.cfg
	if cfg.HTTPS == "" {
		return nil
	}
	s.initProxy()
	h := &httpsIngress{}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.HTTPSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTPSCertFile, cfg.HTTPSKeyFile)
		if err != nil {
			return cfgerr.Wrap("server", "HTTPSCertFile", fmt.Errorf("loading %s and %s: %w", cfg.HTTPSCertFile, cfg.HTTPSKeyFile, err))
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	} else {
		iss, err := newIssuer(s)
		if err != nil {
			return err
		}
		h.issuer = iss
		tlsCfg.GetCertificate = iss.getCertificate
		// acme-tls/1 lets the CA validate over this very port (TLS-ALPN-01).
		tlsCfg.NextProtos = []string{"h2", "http/1.1", acme.ALPNProto}
	}
	ln := cfg.HTTPSListener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTPS); err != nil {
			return fmt.Errorf("server: listen for HTTPS on %s: %w (is another server using it? pick another address)", cfg.HTTPS, err)
		}
	}
	h.ln = s.acceptProxy(ln)
	h.srv = &http.Server{
		Handler:           s,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slogErrorLog(s.log),
		HTTP2:             publicHTTP2(),
	}
	s.https = h
	if s.httpSrv != nil {
		var plain http.Handler = s
		if !cfg.HTTPPlain {
			plain = http.HandlerFunc(s.redirectToHTTPS)
		}
		if h.issuer != nil {
			// HTTP-01 challenges arrive on the plain port.
			plain = h.issuer.m.HTTPHandler(plain)
		}
		s.httpSrv.Handler = plain
	}
	return nil
}

// HTTPSAddr returns the HTTPS ingress address, or nil when there is none.
func (s *Server) HTTPSAddr() net.Addr {
	if s.https == nil {
		return nil
	}
	return s.https.ln.Addr()
}

func (s *Server) serveHTTPS(errc chan<- error) {
	if s.https == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.https.srv.ServeTLS(s.https.ln, "", "")
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
}

func (s *Server) httpsPort() int {
	if s.cfg.PublicHTTPSPort != 0 {
		return s.cfg.PublicHTTPSPort
	}
	if a, ok := s.https.ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 443
}

func (s *Server) httpsURL(host string) string {
	if port := s.httpsPort(); port != 443 {
		return "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	}
	return "https://" + host
}

// redirectToHTTPS answers the plain ingress when HTTPS is on: every request
// is sent to the same URL over HTTPS, except the health check, which load
// balancers probe on the plain port.
func (s *Server) redirectToHTTPS(w http.ResponseWriter, r *http.Request) {
	host, ok := s.checkRequest(w, r)
	if !ok {
		return
	}
	if s.serveHealth(w, r, host) {
		return
	}
	// 307 keeps the method and body and is not cached forever, so turning
	// plain HTTP back on later does not leave browsers stuck on a redirect.
	http.Redirect(w, r, s.httpsURL(host)+r.URL.RequestURI(), http.StatusTemporaryRedirect)
}
