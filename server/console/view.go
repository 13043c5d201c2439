package console

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// view is what a page is rendered from: the latest sample arranged for
// one page, across every edge.
type view struct {
	Page     string
	Title    string
	Fleet    bool // more than one edge: show which edge each row is on
	Now      time.Time
	Edges    []Edge
	Who      string
	CSRF     string
	Flash    string
	FlashBad bool

	Totals   totals
	Tunnels  []tunnelRow
	Sessions []sessionRow
	Owners   []ownerRow
	Leases   []leaseRow
	Refusals []refusalRow
	Certs    []certRow
	Actions  []auditEntry
	Traffic  spark // the fleet's bytes/s
	Requests spark // the fleet's requests/s
}

type totals struct {
	Edges, Agents, Sessions, Tunnels  int
	Streams                           int64
	ReqRate, ErrRate, InRate, OutRate float64
	Refused                           int64
	Leases                            int
	CertSoonest                       *certRow
	CertFailing                       int
}

type tunnelRow struct {
	Edge string
	Tunnel
	InRate, OutRate float64
	Spark           spark
}

type sessionRow struct {
	Edge string
	Session
}

type ownerRow struct {
	Edge string
	Owner
}

type leaseRow struct {
	Edge string
	Lease
}

type refusalRow struct {
	Edge string
	Refusal
}

type certRow struct {
	Edge string
	Certificate
}

// spark is a sparkline's two polylines (in and out) on a 120×28 box.
type spark struct {
	In, Out string
	Peak    float64
}

const sparkW, sparkH = 120, 28

func makeSpark(s series) spark {
	var peak float64
	for i := range s.in {
		peak = max(peak, s.in[i], s.out[i])
	}
	line := func(v []float64) string {
		if len(v) == 0 {
			return ""
		}
		var b strings.Builder
		// A young series fills the width too: a line squeezed into the
		// right edge reads as nothing.
		step := float64(sparkW) / float64(max(len(v)-1, 1))
		x0 := 0.0
		for i, y := range v {
			h := float64(sparkH - 2)
			if peak > 0 {
				h = float64(sparkH-2) - y/peak*float64(sparkH-4)
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", x0+step*float64(i), h)
		}
		return strings.TrimSpace(b.String())
	}
	return spark{In: line(s.in), Out: line(s.out), Peak: peak}
}

// build arranges smp for page.
func build(page string, smp *sample, now time.Time) *view {
	snaps := append([]Snapshot(nil), smp.snaps...)
	sortSnapshots(snaps)
	v := &view{Page: page, Title: pageTitles[page], Fleet: len(snaps) > 1, Now: now}
	v.Traffic = makeSpark(smp.total)
	v.Requests = makeSpark(series{in: smp.reqs.in, out: smp.reqs.out})
	v.Totals.ReqRate, v.Totals.ErrRate = smp.totals.reqs, smp.totals.err
	v.Totals.InRate, v.Totals.OutRate = smp.totals.in, smp.totals.out
	v.Totals.Edges = len(snaps)
	for _, sn := range snaps {
		id := sn.Edge.ID
		v.Edges = append(v.Edges, sn.Edge)
		for _, t := range sn.Tunnels {
			k := tunnelKey(id, t.ID)
			r := smp.rates[k]
			v.Tunnels = append(v.Tunnels, tunnelRow{Edge: id, Tunnel: t, InRate: r.in, OutRate: r.out, Spark: makeSpark(smp.hist[k])})
			v.Totals.Streams += t.Streams
		}
		for _, s := range sn.Sessions {
			v.Sessions = append(v.Sessions, sessionRow{id, s})
		}
		for _, o := range sn.Owners {
			v.Owners = append(v.Owners, ownerRow{id, o})
			if o.Sessions > 0 {
				v.Totals.Agents++
			}
		}
		for _, l := range sn.Leases {
			v.Leases = append(v.Leases, leaseRow{id, l})
		}
		for _, r := range sn.Refusals {
			v.Refusals = append(v.Refusals, refusalRow{id, r})
			v.Totals.Refused += r.Count
		}
		for _, c := range sn.Certificates {
			row := certRow{id, c}
			v.Certs = append(v.Certs, row)
			if c.State == "failing" {
				v.Totals.CertFailing++
			}
			if !c.NotAfter.IsZero() && (v.Totals.CertSoonest == nil || c.NotAfter.Before(v.Totals.CertSoonest.NotAfter)) {
				v.Totals.CertSoonest = &row
			}
		}
	}
	v.Totals.Sessions, v.Totals.Tunnels, v.Totals.Leases = len(v.Sessions), len(v.Tunnels), len(v.Leases)
	sort.SliceStable(v.Tunnels, func(i, j int) bool { return v.Tunnels[i].URL < v.Tunnels[j].URL })
	if page == "overview" {
		sort.SliceStable(v.Tunnels, func(i, j int) bool {
			return v.Tunnels[i].InRate+v.Tunnels[i].OutRate > v.Tunnels[j].InRate+v.Tunnels[j].OutRate
		})
		v.Tunnels = v.Tunnels[:min(len(v.Tunnels), busiestShown)]
	}
	sort.SliceStable(v.Sessions, func(i, j int) bool { return v.Sessions[i].Since.Before(v.Sessions[j].Since) })
	sort.SliceStable(v.Owners, func(i, j int) bool { return v.Owners[i].Name < v.Owners[j].Name })
	sort.SliceStable(v.Refusals, func(i, j int) bool { return v.Refusals[i].Last.After(v.Refusals[j].Last) })
	sort.SliceStable(v.Certs, func(i, j int) bool { return v.Certs[i].NotAfter.Before(v.Certs[j].NotAfter) })
	return v
}

// busiestShown is how many tunnels the overview lists.
const busiestShown = 8

var pageTitles = map[string]string{
	"overview": "Overview", "tunnels": "Tunnels", "agents": "Agents", "owners": "Owners",
	"refusals": "Refusals", "certificates": "Certificates",
}

var pageOrder = []string{"overview", "tunnels", "agents", "owners", "refusals", "certificates"}

// humanBytes writes a byte count with a binary unit: 1.5 KiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanRate(f float64) string {
	if f < 0.05 {
		return "0 B/s"
	}
	return humanBytes(int64(f+0.5)) + "/s"
}

// ago writes how long before now t was, to a useful precision.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return roughDuration(now.Sub(t))
}

// until writes how long from now until t; "overdue" when past.
func until(now, t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := t.Sub(now)
	if d < 0 {
		return "overdue by " + roughDuration(-d)
	}
	return "in " + roughDuration(d)
}

func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return strconv.Itoa(int(d.Hours()/24)) + " days"
}
