//go:build race

package server

// raceEnabled: the race detector enlarges stack frames, so stack-size
// measurements do not hold under it.
const raceEnabled = true
