package gemm

import "testing"

func BenchmarkKernelOnly(bm *testing.B) {
	kc := 256
	a := make([]float32, kc*mr)
	b := make([]float32, kc*nr)
	c := make([]float32, mr*nr)
	for bm.Loop() {
		kernel6x16AVX2(kc, &a[0], &b[0], &c[0], nr, true)
	}
	bm.ReportMetric(2*float64(kc*mr*nr)*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
}
