package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countCalls runs Do(parts) and returns how often each part was called.
func countCalls(parts int) []int32 {
	counts := make([]int32, parts)
	Do(parts, func(p int) { atomic.AddInt32(&counts[p], 1) })
	return counts
}

func checkOnce(t *testing.T, counts []int32) {
	t.Helper()
	for p, c := range counts {
		if c != 1 {
			t.Fatalf("part %d of %d ran %d times, want once", p, len(counts), c)
		}
	}
}

func TestDoRunsEveryPartOnce(t *testing.T) {
	for _, procs := range []int{1, 2, 4} {
		old := runtime.GOMAXPROCS(procs)
		for _, parts := range []int{0, 1, 2, 3, 7, 64, 1000} {
			for range 20 {
				checkOnce(t, countCalls(parts))
			}
		}
		runtime.GOMAXPROCS(old)
	}
}

// TestDoUsesWorkers checks that with two processors the two parts of a Do
// run at the same time (on the caller and a worker) in at least some of
// many calls: each part waits up to 200µs for the other to start.
func TestDoUsesWorkers(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	concurrent := 0
	for range 200 {
		var inside atomic.Int32
		var overlap atomic.Bool
		Do(2, func(p int) {
			if inside.Add(1) == 2 {
				overlap.Store(true)
			}
			deadline := time.Now().Add(200 * time.Microsecond)
			for time.Now().Before(deadline) && !overlap.Load() {
			}
			inside.Add(-1)
		})
		if overlap.Load() {
			concurrent++
		}
	}
	if concurrent == 0 {
		t.Fatal("in 200 calls of Do(2) the two parts never ran at the same time")
	}
}

// TestDoWakesParkedWorkers calls Do after the workers have parked.
func TestDoWakesParkedWorkers(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	for range 5 {
		time.Sleep(3 * SpinTime)
		checkOnce(t, countCalls(4))
	}
}

// TestDoNestedAndConcurrent calls Do from inside parts and from many
// goroutines at once: the pool serves one caller, the others start
// goroutines, and nothing deadlocks.
func TestDoNestedAndConcurrent(t *testing.T) {
	old := runtime.GOMAXPROCS(4)
	defer runtime.GOMAXPROCS(old)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				outer := make([]int32, 3)
				inner := make([][]int32, 3)
				Do(3, func(p int) {
					atomic.AddInt32(&outer[p], 1)
					inner[p] = countCalls(5)
				})
				checkOnce(t, outer)
				for _, c := range inner {
					checkOnce(t, c)
				}
			}
		})
	}
	wg.Wait()
}

// TestDoSameResultAsSerial checks that a split sum gives the same bits
// whoever runs the parts: partial sums land in their part's slot.
func TestDoSameResultAsSerial(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	x := make([]float32, 100003)
	for i := range x {
		x[i] = float32(i%97) * 0.37
	}
	const parts = 7
	sum := func() float32 {
		partial := make([]float32, parts)
		Do(parts, func(p int) {
			lo, hi := len(x)*p/parts, len(x)*(p+1)/parts
			for _, v := range x[lo:hi] {
				partial[p] += v
			}
		})
		var s float32
		for _, v := range partial {
			s += v
		}
		return s
	}
	want := sum()
	for range 100 {
		if got := sum(); got != want {
			t.Fatalf("split sum %v, first run %v", got, want)
		}
	}
}

// TestDoNestedUsesAtMostProcs: a Do that finds the pool busy runs its many
// parts on at most GOMAXPROCS goroutines, as the pool would, not one per
// part.
func TestDoNestedUsesAtMostProcs(t *testing.T) {
	old := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(old)
	var active, peak atomic.Int32
	calls := make([]int32, 200)
	Do(2, func(outer int) {
		if outer != 0 {
			return
		}
		Do(len(calls), func(p int) {
			n := active.Add(1)
			for {
				m := peak.Load()
				if n <= m || peak.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(50 * time.Microsecond)
			atomic.AddInt32(&calls[p], 1)
			active.Add(-1)
		})
	})
	checkOnce(t, calls)
	if p := peak.Load(); p > 2 {
		t.Errorf("%d parts ran at once, want at most GOMAXPROCS (2)", p)
	}
}
