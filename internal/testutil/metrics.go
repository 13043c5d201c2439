package testutil

// Scraping a Prometheus /metrics endpoint over HTTP, as Prometheus would,
// and looking series up by name and labels, so tests of the edge, the agent
// and the CLI assert what an operator would see.

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServeMetrics serves reg over HTTP the way cmd/sluice does, until the test
// ends, and returns its /metrics URL.
func ServeMetrics(t testing.TB, reg *prometheus.Registry) string {
	hs := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(hs.Close)
	return hs.URL + "/metrics"
}

// Sample is one line of the text exposition format.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Scrape is one scrape's samples.
type Scrape []Sample

// ScrapeMetrics scrapes url (the full /metrics URL).
func ScrapeMetrics(t testing.TB, url string) Scrape {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	s, err := ParseMetrics(bufio.NewScanner(resp.Body))
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return s
}

// ParseMetrics reads the text exposition format (comments skipped).
func ParseMetrics(sc *bufio.Scanner) (Scrape, error) {
	var out Scrape
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		var s Sample
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.Name = line[:i]
			j := strings.LastIndex(line, "}")
			if j < i {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			labels, err := parseLabels(line[i+1 : j])
			if err != nil {
				return nil, fmt.Errorf("line %q: %v", line, err)
			}
			s.Labels = labels
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, val, ok := strings.Cut(line, " ")
			if !ok {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			s.Name, rest = name, val
		}
		val, _, _ := strings.Cut(rest, " ")
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: value: %v", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseLabels(s string) (map[string]string, error) {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || len(rest) == 0 || rest[0] != '"' {
			return nil, fmt.Errorf("bad labels %q", s)
		}
		// Values are quoted with \\, \" and \n escaped.
		var b strings.Builder
		i := 1
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					b.WriteByte('\n')
					continue
				}
			}
			b.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return nil, fmt.Errorf("unterminated label value in %q", s)
		}
		m[strings.TrimSpace(k)] = b.String()
		s = strings.TrimPrefix(rest[i+1:], ",")
	}
	return m, nil
}

// Value returns the sum of the samples named name whose labels include all
// of kv ("key", "value", ...), and whether any matched.
func (s Scrape) Value(name string, kv ...string) (float64, bool) {
	var sum float64
	found := false
outer:
	for _, x := range s {
		if x.Name != name {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if x.Labels[kv[i]] != kv[i+1] {
				continue outer
			}
		}
		sum += x.Value
		found = true
	}
	return sum, found
}

// Must is Value that fails the test when no sample matches.
func (s Scrape) Must(t testing.TB, name string, kv ...string) float64 {
	t.Helper()
	v, ok := s.Value(name, kv...)
	if !ok {
		t.Fatalf("no sample %s%v in the scrape", name, kv)
	}
	return v
}

// AwaitMetrics scrapes url until check passes, for up to 10 s, and fails the test
// with check's last complaint otherwise. Counters are bumped just after the
// bytes they count are handed on, so a peer can see the bytes a moment
// before a scrape sees the count.
func AwaitMetrics(t testing.TB, url string, check func(Scrape) error) Scrape {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := ScrapeMetrics(t, url)
		err := check(s)
		if err == nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MetricEqual is a check for AwaitMetrics: the series name{kv} sums to want.
func MetricEqual(want float64, name string, kv ...string) func(Scrape) error {
	return func(s Scrape) error {
		v, ok := s.Value(name, kv...)
		if !ok {
			return fmt.Errorf("no sample %s%v in the scrape", name, kv)
		}
		if v != want {
			return fmt.Errorf("%s%v = %v, want %v", name, kv, v, want)
		}
		return nil
	}
}

// AllOf combines checks.
func AllOf(checks ...func(Scrape) error) func(Scrape) error {
	return func(s Scrape) error {
		for _, c := range checks {
			if err := c(s); err != nil {
				return err
			}
		}
		return nil
	}
}
