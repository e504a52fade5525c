package elem

import (
	"math/rand/v2"
	"testing"
)

// The block kernels compute what the broadcasting entry points compute.
func TestBlockKernelsMatchEntryPoints(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 1000
	a, b := make([]float32, n), make([]float32, n)
	for i := range a {
		a[i], b[i] = float32(r.NormFloat64()), float32(r.NormFloat64())+3
	}
	for _, op := range []BinaryOp{Add, Sub, Mul, Div, Max, Min, Pow} {
		k, err := BinaryBlockKernelFloat32(op)
		if err != nil {
			t.Fatal(err)
		}
		got, want := make([]float32, n), make([]float32, n)
		for form, run := range map[string]func(){
			"vv": func() { k.VV(got, a, b); _ = Binary(op, want, []int{n}, a, []int{n}, b, []int{n}) },
			"vs": func() { k.VS(got, a, b[0]); _ = Binary(op, want, []int{n}, a, []int{n}, b[:1], nil) },
			"sv": func() { k.SV(got, a[0], b); _ = Binary(op, want, []int{n}, a[:1], nil, b, []int{n}) },
		} {
			run()
			for i := range got {
				if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
					t.Fatalf("%s %s [%d]: %g, want %g", op, form, i, got[i], want[i])
				}
			}
		}
	}
	for _, op := range []UnaryOp{Neg, Abs, Exp, Erf, Tanh, Log, Logistic, Sqrt, Rsqrt, Sign, Cos, Round} {
		k, err := UnaryBlockKernelFloat32(op)
		if err != nil {
			t.Fatal(err)
		}
		got, want := make([]float32, n), make([]float32, n)
		k(got, b)
		_ = Unary(op, want, b)
		for i := range got {
			if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
				t.Fatalf("%s [%d]: %g, want %g", op, i, got[i], want[i])
			}
		}
	}
	if _, err := UnaryBlockKernelFloat32(LogicalNot); err == nil {
		t.Error("LogicalNot on float32: want an error")
	}
	if _, err := BinaryBlockKernelFloat32(ShiftLeft); err == nil {
		t.Error("ShiftLeft on float32: want an error")
	}
}
