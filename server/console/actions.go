package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// An action is asked for in two steps: GET /confirm/{action} shows what it
// will do, and its form POSTs /actions/{action} with the session's CSRF
// token. API clients POST directly with the bearer token.

type fact struct{ K, V string }

type confirmView struct {
	Title, What, Action, Edge, Target, Who, CSRF, Back string
	Facts                                              []fact
}

var actionTitles = map[string]string{
	"disconnect": "Disconnect the session",
	"revoke":     "Revoke the token",
	"release":    "Release the address",
}

var actionBack = map[string]string{"disconnect": "/agents", "revoke": "/owners", "release": "/tunnels"}

var actionDone = map[string]string{
	"disconnect": "Session %s disconnected.",
	"revoke":     "Token %s revoked and removed from the tokens file.",
	"release":    "%s released.",
}

func (c *Console) snapshotOf(edge string) (Snapshot, bool) {
	smp, _ := c.live.latest()
	for _, sn := range smp.snaps {
		if sn.Edge.ID == edge {
			return sn, true
		}
	}
	return Snapshot{}, false
}

// backend finds an edge by its ID in the latest sample, whose snapshots
// are in the order of Config.Edges.
func (c *Console) backend(edge string) Backend {
	smp, _ := c.live.latest()
	for i, sn := range smp.snaps {
		if sn.Edge.ID == edge {
			return c.cfg.Edges[i]
		}
	}
	return nil
}

// describe says what action would do to target on edge, from the latest
// sample, or why it cannot.
func (c *Console) describe(action, edge, target string) (confirmView, error) {
	v := confirmView{Title: actionTitles[action], Action: action, Edge: edge, Target: target, Back: actionBack[action]}
	if v.Title == "" {
		return v, fmt.Errorf("there is no action %q: the console can disconnect, revoke and release", action)
	}
	sn, ok := c.snapshotOf(edge)
	if !ok {
		return v, fmt.Errorf("there is no edge %q in this console", edge)
	}
	switch action {
	case "disconnect":
		for _, s := range sn.Sessions {
			if s.ID != target {
				continue
			}
			var urls []string
			for _, t := range sn.Tunnels {
				if t.Session == s.ID {
					urls = append(urls, t.URL)
				}
			}
			v.What = "The edge closes this agent session now. Its tunnels go offline until the agent reconnects, which it does on its own, getting the same addresses back."
			v.Facts = []fact{{"Session", s.ID}, {"Owner", s.Owner}, {"Agent address", s.RemoteAddr}, {"Tunnels", strings.Join(urls, ", ")}}
			return v, nil
		}
		return v, fmt.Errorf("session %s is not connected (any more)", target)
	case "revoke":
		for _, o := range sn.Owners {
			for _, t := range o.Tokens {
				if t.ID != target {
					continue
				}
				if !t.Revocable {
					return v, fmt.Errorf("token %s is given in the edge's configuration, not its tokens file: remove it there and restart the edge", t.ID)
				}
				sessions := "It has no session connected now."
				switch t.Sessions {
				case 0:
				case 1:
					sessions = "Its one session is told and closed (the agent stops, exit code 3)."
				default:
					sessions = fmt.Sprintf("Its %d sessions are told and closed (their agents stop, exit code 3).", t.Sessions)
				}
				v.What = "The edge stops accepting this token now and for good. " + sessions + " Its entry is removed from the tokens file, so a reload or a restart keeps it revoked."
				v.Facts = []fact{{"Token", t.ID}, {"Owner", o.Name}, {"Source", t.Source}, {"Sessions", fmt.Sprint(t.Sessions)}}
				return v, nil
			}
		}
		return v, fmt.Errorf("token %s is not accepted by this edge (any more)", target)
	case "release":
		for _, l := range sn.Leases {
			if l.Key == target {
				v.What = "The edge forgets that this address is held for an agent that went away: another owner may claim it now, and the agent gets a new one if it comes back."
				v.Facts = []fact{{"Address", l.Label}, {"Owner", l.Owner}, {"Held until", l.Until.UTC().Format("2006-01-02 15:04:05 UTC")}}
				return v, nil
			}
		}
		return v, fmt.Errorf("%s is not held for an absent agent (any more)", target)
	}
	return v, nil
}

func (c *Console) confirm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v, err := c.describe(r.PathValue("action"), q.Get("edge"), q.Get("target"))
	if err != nil {
		c.refuse(w, r, http.StatusNotFound, err.Error())
		return
	}
	a := authOf(r)
	v.Who = a.actor.String()
	if a.sess != nil {
		v.CSRF = a.sess.csrf
	}
	render(w, http.StatusOK, "confirm", v)
}

// act runs an action. The edge logs it too; the console's own log line
// names who asked.
func (c *Console) act(w http.ResponseWriter, r *http.Request) {
	a := authOf(r)
	if err := checkCSRF(r, a); err != nil {
		c.cfg.Logger.Warn("console action refused: bad CSRF token", "from", a.actor.Addr, "path", r.URL.Path)
		c.refuse(w, r, http.StatusForbidden, err.Error())
		return
	}
	action, edge, target := r.PathValue("action"), r.PostFormValue("edge"), r.PostFormValue("target")
	if _, ok := actionTitles[action]; !ok {
		c.refuse(w, r, http.StatusNotFound, fmt.Sprintf("there is no action %q: the console can disconnect, revoke and release", action))
		return
	}
	b := c.backend(edge)
	if b == nil {
		c.refuse(w, r, http.StatusNotFound, fmt.Sprintf("there is no edge %q in this console", edge))
		return
	}
	var err error
	switch action {
	case "disconnect":
		err = b.Disconnect(target, a.actor)
	case "revoke":
		err = b.RevokeToken(target, a.actor)
	case "release":
		err = b.ReleaseLease(target, a.actor)
	}
	e := auditEntry{Time: time.Now(), Who: a.actor.String(), Action: action, Target: target, Edge: edge, Result: "done"}
	if err != nil {
		e.Result, e.Failed = err.Error(), true
	}
	c.audit.add(e)
	log := c.cfg.Logger.With("action", action, "target", target, "edge", edge, "who", a.actor.Name, "from", a.actor.Addr)
	if err != nil {
		log.Warn("console action failed", "err", err)
	} else {
		log.Info("console action")
	}
	c.live.sample(time.Now()) // the next page shows the result
	code := http.StatusOK
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case err != nil:
		code = http.StatusConflict
	}
	if a.sess == nil {
		if err != nil {
			apiError(w, code, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"result": "done"})
		return
	}
	msg := fmt.Sprintf(actionDone[action], target)
	if err != nil {
		msg = fmt.Sprintf("%s %s failed: %v", actionTitles[action], target, err)
	}
	c.sessions.setFlash(a.sess, msg, err != nil)
	http.Redirect(w, r, actionBack[action], http.StatusSeeOther)
}

// refuse answers a browser with a page and an API client with JSON.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if a := authOf(r); a != nil && a.sess == nil || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		apiError(w, code, "%s", msg)
		return
	}
	render(w, code, "message", struct{ Title, Text string }{http.StatusText(code), msg})
}

// auditEntry is one action, as the overview lists it.
type auditEntry struct {
	Time                              time.Time
	Who, Action, Target, Edge, Result string
	Failed                            bool
}

// auditLog keeps the latest actions for the overview; the edge's log keeps
// them all.
type auditLog struct {
	mu      sync.Mutex
	entries []auditEntry
}

const auditKeep = 20

func (l *auditLog) add(e auditEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
	if len(l.entries) > auditKeep {
		l.entries = l.entries[1:]
	}
}

// recent returns the entries, newest first.
func (l *auditLog) recent() []auditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]auditEntry, len(l.entries))
	for i, e := range l.entries {
		out[len(out)-1-i] = e
	}
	return out
}
