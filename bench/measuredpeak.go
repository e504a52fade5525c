package bench

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// fmaChunk is the iterations of one fmaLoop call: 2^20, so that each of its
// accumulators (counting in steps of 1.0) stays exact in float32.
const fmaChunk = 1 << 20

// MeasuredPeak is the fp32 rate a register-only FMA loop reaches on this
// machine: no memory traffic, 12 independent FMA chains per thread on the
// widest vectors the CPU has (16 lanes with AVX-512F, else 8),
// one thread per goroutine locked to its OS thread. It is what the cores
// deliver as the machine runs now (boost clock, a VM's scheduling, SMT
// siblings sharing FMA units), the ceiling a GEMM can approach, beside
// Peak's number from the CPU's description.
type MeasuredPeak struct {
	Threads int     `json:"threads"`
	Lanes   int     `json:"lanes"`
	Seconds float64 `json:"seconds"`
	GFLOPs  float64 `json:"gflops"`
}

// MeasurePeak runs the FMA loop on threads goroutines for about d and
// returns the rate over all of them. Each call's result is checked against
// the FMAs it should have done, so a loop that skipped work is an error, not
// a fast machine. It needs AVX2 and FMA on amd64.
func MeasurePeak(threads int, d time.Duration) (MeasuredPeak, error) {
	if threads < 1 {
		return MeasuredPeak{}, fmt.Errorf("measured peak: %d threads", threads)
	}
	_, _, lanes, ok := fmaLoop(0)
	if !ok {
		return MeasuredPeak{}, fmt.Errorf("measured peak: no AVX2+FMA loop for %s/%s", runtime.GOOS, runtime.GOARCH)
	}
	if runtime.GOMAXPROCS(0) < threads {
		return MeasuredPeak{}, fmt.Errorf("measured peak: %d threads but GOMAXPROCS is %d", threads, runtime.GOMAXPROCS(0))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		flops float64
		bad   error
	)
	start := time.Now()
	deadline := start.Add(d)
	for range threads {
		wg.Go(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var n float64
			for {
				sum, perIter, _, _ := fmaLoop(fmaChunk)
				if want := float32(12 * fmaChunk); sum != want {
					mu.Lock()
					bad = fmt.Errorf("measured peak: FMA loop returned %v, want %v", sum, want)
					mu.Unlock()
					return
				}
				n += float64(perIter) * fmaChunk
				if !time.Now().Before(deadline) {
					break
				}
			}
			mu.Lock()
			flops += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if bad != nil {
		return MeasuredPeak{}, bad
	}
	sec := time.Since(start).Seconds()
	return MeasuredPeak{Threads: threads, Lanes: lanes, Seconds: sec, GFLOPs: flops / sec / 1e9}, nil
}

// String describes the measurement.
func (m MeasuredPeak) String() string {
	return fmt.Sprintf("%.1f GFLOP/s on %d thread(s) (register-only %d-lane FMA loop, %.1f s)", m.GFLOPs, m.Threads, m.Lanes, m.Seconds)
}
