package bench

import (
	"runtime"
	"testing"
	"time"
)

func TestFMALoopCounts(t *testing.T) {
	if _, _, _, ok := fmaLoop(0); !ok {
		t.Skip("no AVX2+FMA loop on this CPU")
	}
	for _, n := range []int{0, 1, 7, 1000, fmaChunk} {
		sum, perIter, lanes, _ := fmaLoop(n)
		if want := float32(12 * n); sum != want {
			t.Errorf("fmaLoop(%d) = %v, want %v", n, sum, want)
		}
		if lanes != 8 && lanes != 16 {
			t.Errorf("fmaLoop lanes = %d, want 8 or 16", lanes)
		}
		if perIter != 12*lanes*2 {
			t.Errorf("fmaLoop flops per iteration = %d, want 12 FMAs x %d lanes x 2 = %d", perIter, lanes, 12*lanes*2)
		}
	}
}

func TestMeasurePeak(t *testing.T) {
	_, perIter, _, ok := fmaLoop(0)
	if !ok {
		t.Skip("no AVX2+FMA loop on this CPU")
	}
	m, err := MeasurePeak(1, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// At least one chunk was run and counted over the elapsed time.
	if m.Threads != 1 || m.Seconds <= 0 || m.GFLOPs <= 0 {
		t.Errorf("MeasurePeak = %+v", m)
	}
	if m.GFLOPs*1e9*m.Seconds < float64(perIter)*fmaChunk*0.999 {
		t.Errorf("MeasurePeak counted %.3g FLOPs, less than one chunk (%d)", m.GFLOPs*1e9*m.Seconds, perIter*fmaChunk)
	}
	if _, err := MeasurePeak(0, time.Millisecond); err == nil {
		t.Error("MeasurePeak(0 threads) did not fail")
	}
	if _, err := MeasurePeak(runtime.GOMAXPROCS(0)+1, time.Millisecond); err == nil {
		t.Error("MeasurePeak above GOMAXPROCS did not fail")
	}
}
