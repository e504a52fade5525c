//go:build !amd64

package bench

// fmaLoop has no implementation off amd64: MeasurePeak reports it.
func fmaLoop(int) (float32, int, int, bool) { return 0, 0, 0, false }
