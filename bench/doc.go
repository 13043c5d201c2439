// Package bench is sluice's benchmark harness: it runs tunnels (sluice,
// rathole, frp) and a no-tunnel baseline ("direct") as separate OS processes,
// drives them all with the same load generator against the same target
// service, and turns the measurements into a results JSON, a terminal table,
// BENCHMARKS.md with SVG charts, a CI regression gate and a capacity plan.
//
// Fairness rules the code keeps: every system sees the same target process,
// the same load generator code, the same sizes and the same loopback; systems
// run interleaved round by round (A B C D, A B C D, ...) so slow drift on a
// noisy machine spreads over all of them; every figure is reported as the
// median over rounds with its spread and as a ratio to direct.
package bench
