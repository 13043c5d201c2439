package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/control"
)

// The agent's Hello names its program and version; the admin listing shows
// it, stripped of control characters and bounded, since it comes from the
// network. The edge's Welcome names its own build.
func TestAdminListsAgentSoftware(t *testing.T) {
	s, _ := metricsEdge(t)
	i := 0
	for _, tc := range []struct{ sent, shown string }{
		{"sluice-agent/v1.2.3", "sluice-agent/v1.2.3"},
		{"sluice-agent/v1.2.3+dirty", "sluice-agent/v1.2.3+dirty"},
		{"evil\x1b[2J\r\nforged log line\x00", "evil[2Jforged log line"},
		{strings.Repeat("é", 80), strings.Repeat("é", maxSoftware/2)},
		{"a" + strings.Repeat("é", 80), "a" + strings.Repeat("é", (maxSoftware-2)/2)}, // cut inside a rune
		{"", ""},
	} {
		i++
		sess, ctrl := rawAgent(t, s)
		send(t, ctrl, control.Hello{Version: control.Version, Software: tc.sent}, control.Auth{Token: "T"})
		m, err := control.ReadMessage(ctrl)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := m.(control.Welcome)
		if !ok || w.Software != Software || !strings.HasPrefix(w.Software, "sluice-edge/") {
			t.Fatalf("welcome %#v; want software %q", m, Software)
		}
		// An answered Register: the session is listed by now.
		register(t, ctrl, control.Register{Ref: 1, Kind: control.KindHTTP, Name: fmt.Sprintf("sw%d", i)})
		var shown *AdminAgent
		st := adminGet(t, s, "admin-secret")
		for i := range st.Agents {
			if st.Agents[i].Session == w.Session {
				shown = &st.Agents[i]
			}
		}
		if shown == nil {
			t.Fatalf("session %s not in the admin listing %+v", w.Session, st.Agents)
		}
		if shown.Software != tc.shown {
			t.Errorf("Hello software %q listed as %q; want %q", tc.sent, shown.Software, tc.shown)
		}
		sess.Close()
	}
}
