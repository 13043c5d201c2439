//go:build race

package mux

// tstRace is true when the race detector is on. The detector makes every
// copied byte cost about ten times more, so the bulk tests move less data.
const tstRace = true
