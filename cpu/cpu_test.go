package cpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/peco-dev/peco/cpu"
)

// The backend is checked op by op against GoMLX's own pure-Go backend: the
// same graph function runs on both, on the same inputs, and every output
// must agree (exactly for data movement and integer ops, to a tolerance for
// float math).

func backends(t *testing.T) (ref, ours compute.Backend) {
	t.Helper()
	b, err := cpu.New("")
	if err != nil {
		t.Fatal(err)
	}
	return gobackend.GetBackend(), b
}

func randFloats(r *rand.Rand, dims ...int) *tensors.Tensor {
	s := shapes.Make(dtypes.Float32, dims...)
	v := make([]float32, s.Size())
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

func randInts(r *rand.Rand, n int, dims ...int) *tensors.Tensor {
	s := shapes.Make(dtypes.Int32, dims...)
	v := make([]int32, s.Size())
	for i := range v {
		v[i] = int32(r.IntN(n))
	}
	return tensors.FromFlatDataAndDimensions(v, dims...)
}

// compareOutputs checks two output lists element by element.
func compareOutputs(t *testing.T, want, got []*tensors.Tensor, tol float64) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		if !want[i].Shape().Equal(got[i].Shape()) {
			t.Fatalf("output #%d: shape %s, want %s", i, got[i].Shape(), want[i].Shape())
		}
		w, g := flatFloat64(want[i]), flatFloat64(got[i])
		for j := range w {
			d := math.Abs(w[j] - g[j])
			if math.IsNaN(w[j]) && math.IsNaN(g[j]) {
				continue
			}
			if d > tol*(1+math.Abs(w[j])) {
				t.Fatalf("output #%d (%s) element %d: got %g, want %g", i, want[i].Shape(), j, g[j], w[j])
			}
		}
	}
}

func flatFloat64(t *tensors.Tensor) []float64 {
	var out []float64
	t.ConstFlatData(func(flat any) {
		switch v := flat.(type) {
		case []float32:
			for _, x := range v {
				out = append(out, float64(x))
			}
		case []float64:
			out = append(out, v...)
		case []int32:
			for _, x := range v {
				out = append(out, float64(x))
			}
		case []int64:
			for _, x := range v {
				out = append(out, float64(x))
			}
		case []bool:
			for _, x := range v {
				if x {
					out = append(out, 1)
				} else {
					out = append(out, 0)
				}
			}
		case []uint64:
			for _, x := range v {
				out = append(out, float64(x))
			}
		default:
			panic(fmt.Sprintf("flatFloat64: %T", flat))
		}
	})
	return out
}

func TestOpsMatchGoBackend(t *testing.T) {
	ref, ours := backends(t)
	r := rand.New(rand.NewPCG(1, 2))
	x23 := randFloats(r, 2, 3)
	x234 := randFloats(r, 2, 3, 4)
	x4 := randFloats(r, 4)
	cases := []struct {
		name   string
		fn     func(in []*Node) []*Node
		inputs []any
		tol    float64
	}{
		{"add-broadcast", func(in []*Node) []*Node { return []*Node{Add(in[0], Reshape(in[1], 1, 1, 4))} }, []any{x234, x4}, 1e-6},
		{"sub-mul-div", func(in []*Node) []*Node {
			a, b := in[0], in[1]
			return []*Node{Div(Mul(Sub(a, b), a), AddScalar(Abs(b), 1))}
		}, []any{x234, x234}, 1e-6},
		{"max-min-pow", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{Add(Max(a, ScalarZero(a.Graph(), a.DType())), Pow(Abs(a), Const(a.Graph(), float32(1.5))))}
		}, []any{x234}, 1e-5},
		{"unary", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{Exp(a), Log(AddScalar(Abs(a), 1)), Sqrt(Abs(a)), Rsqrt(AddScalar(Abs(a), 1)), Erf(a), Tanh(a), Sigmoid(a),
				Neg(a), Sign(a), Floor(a), Ceil(a), Round(a), Cos(a), Sin(a), Log1p(Abs(a)), Expm1(a)}
		}, []any{x234}, 2e-6},
		{"compare-where", func(in []*Node) []*Node {
			a, b := in[0], in[1]
			return []*Node{Where(GreaterThan(a, b), a, MulScalar(b, 2))}
		}, []any{x234, x234}, 0},
		{"reduce", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{ReduceSum(a, 0), ReduceSum(a, -1), ReduceMax(a, 1), ReduceMin(a), ReduceSum(a, 0, 2), ReduceAllSum(a)}
		}, []any{x234}, 1e-6},
		{"argmax", func(in []*Node) []*Node { return []*Node{ArgMax(in[0], -1)} }, []any{x234}, 0},
		{"softmax", func(in []*Node) []*Node { return []*Node{Softmax(in[0], -1)} }, []any{x234}, 1e-6},
		{"transpose", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{TransposeAllAxes(a, 2, 0, 1), TransposeAllAxes(a, 1, 0, 2), TransposeAllAxes(a, 0, 2, 1)}
		}, []any{x234}, 0},
		{"reshape-broadcast", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{BroadcastToDims(Reshape(a, 1, 6), 4, 6), ExpandAxes(a, 1), BroadcastToDims(ExpandAxes(a, -1), 2, 3, 5)}
		}, []any{x23}, 0},
		{"slice-concat-pad", func(in []*Node) []*Node {
			a := in[0]
			return []*Node{Slice(a, AxisRange(), AxisRange(1), AxisRange(0, 4).Stride(2)), Concatenate([]*Node{a, MulScalar(a, 2)}, 1),
				Pad(a, Const(a.Graph(), float32(7)), compute.PadAxis{Start: 1, End: 2}, compute.PadAxis{Start: 0, Interior: 1}, compute.PadAxis{})}
		}, []any{x234}, 0},
		{"gather-scatter", func(in []*Node) []*Node {
			a, idx := in[0], in[1]
			flat := Reshape(a, 6, 4)
			g := Gather(flat, ExpandAxes(idx, -1))
			return []*Node{g, ScatterSum(ZerosLike(flat), ExpandAxes(idx, -1), g, false, false)}
		}, []any{x234, randInts(r, 6, 9)}, 1e-6},
		{"dot-general", func(in []*Node) []*Node {
			a, b, c := in[0], in[1], in[2]
			return []*Node{
				MatMul(a, b), // [5,7]x[7,3]
				DotGeneral(a, []int{0}, nil, c, []int{0}, nil),                                               // [5,7]^T x [5,7]
				DotGeneral(Reshape(a, 5, 7, 1), []int{1}, []int{0}, Reshape(c, 5, 7, 1), []int{1}, []int{0}), // batched
				Einsum("ij,kj->ik", a, c),
			}
		}, []any{randFloats(r, 5, 7), randFloats(r, 7, 3), randFloats(r, 5, 7)}, 1e-5},
		{"convert-iota", func(in []*Node) []*Node {
			a := in[0]
			a3 := MulScalar(a, 3)
			return []*Node{ConvertDType(a3, dtypes.Int32), ConvertDType(GreaterThan(a, ScalarZero(a.Graph(), a.DType())), dtypes.Float32),
				Iota(a.Graph(), shapes.Make(dtypes.Int32, 3, 4), 1), ReduceSum(ConvertDType(a, dtypes.Float64), -1)}
		}, []any{randFloats(r, 2, 3, 4)}, 1e-6},
		{"fused-chains", func(in []*Node) []*Node {
			// Large enough to be fused: GELU, an Adam-like update with
			// scalars on both sides, and a chain whose intermediate is also
			// an output (so it must not be folded away).
			a, b := in[0], in[1]
			gelu := Mul(a, MulScalar(AddScalar(Erf(MulScalar(a, 1/math.Sqrt2)), 1), 0.5))
			m := Add(MulScalar(a, 0.9), MulScalar(b, 0.1))
			upd := Div(m, AddScalar(Sqrt(Abs(b)), 1e-8))
			shared := Exp(Neg(Abs(a)))
			return []*Node{gelu, Sub(a, MulScalar(upd, 1e-3)), shared, Mul(shared, b), Sub(Const(a.Graph(), float32(1)), a)}
		}, []any{randFloats(r, 64, 257), randFloats(r, 64, 257)}, 2e-6},
		{"clip-grad-like", func(in []*Node) []*Node {
			a := in[0]
			norm := Sqrt(ReduceAllSum(Square(a)))
			return []*Node{Mul(a, Min(OnesLike(norm), DivScalar(Reciprocal(norm), 0.5)))}
		}, []any{x234}, 1e-6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clones := func() []any {
				out := make([]any, len(c.inputs))
				for i, x := range c.inputs {
					out[i] = must(x.(*tensors.Tensor).LocalClone())
				}
				return out
			}
			want, err := MustNewExec(ref, c.fn).Exec(clones()...)
			if err != nil {
				t.Fatal(err)
			}
			got, err := MustNewExec(ours, c.fn).Exec(clones()...)
			if err != nil {
				t.Fatal(err)
			}
			compareOutputs(t, want, got, c.tol)
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestElementwiseChainsAreFused: a GELU over a large tensor runs as one fused
// kernel (the profile shows no separate Erf/Add/Mul ops); a small one, or any
// with the nofuse option, runs op by op.
func TestElementwiseChainsAreFused(t *testing.T) {
	for _, c := range []struct {
		dims   []int
		fused  bool
		config string
	}{{[]int{64, 257}, true, "profile"}, {[]int{4, 8}, false, "profile"}, {[]int{64, 257}, false, "profile,nofuse"}} {
		b, err := cpu.New(c.config)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(5, 6))
		exec := MustNewExec(b, func(a *Node) *Node {
			return Mul(a, MulScalar(AddScalar(Erf(MulScalar(a, 1/math.Sqrt2)), 1), 0.5))
		})
		exec.MustExec(randFloats(r, c.dims...))
		prof := b.OpProfile()
		if got := strings.Contains(prof, "| Fused |"); got != c.fused || strings.Contains(prof, "| Erf |") == c.fused {
			t.Errorf("%v: fused %v, want %v; profile:\n%s", c.dims, got, c.fused, prof)
		}
	}
}

// TestBroadcastsAreReadByBlock: a fused kernel reads a broadcast operand
// straight from the broadcast's input, so the broadcast op no longer runs,
// unless its runs are short or another reader needs it materialized; in
// every case the results are those of the unfused graph, bit for bit.
func TestBroadcastsAreReadByBlock(t *testing.T) {
	dims := []int{64, 4, 96}
	for _, c := range []struct {
		name      string
		build     func(x, y *Node) []*Node
		broadcast bool // whether a BroadcastInDim still runs
	}{
		{"bias", func(x, y *Node) []*Node { // [96] -> [64,4,96], a copy per run
			return []*Node{Add(MulScalar(x, 2), ExpandAndBroadcast(Reshape(Slice(y, AxisElem(0), AxisElem(0)), 96), dims, []int{0, 1}))}
		}, false},
		{"rows", func(x, y *Node) []*Node { // [64,4] -> [64,4,96], a fill per run
			return []*Node{Div(x, ExpandAndBroadcast(ReduceSum(y, -1), dims, []int{2}))}
		}, false},
		{"middle", func(x, y *Node) []*Node { // [64,96] -> [64,4,96]
			return []*Node{Sub(Mul(x, y), ExpandAndBroadcast(ReduceSum(y, 1), dims, []int{1}))}
		}, false},
		{"lone op", func(x, y *Node) []*Node { // a single Mul reading a broadcast is fused
			return []*Node{Mul(x, ExpandAndBroadcast(ReduceMax(y, -1), dims, []int{2}))}
		}, false},
		{"scalar", func(x, y *Node) []*Node { // [1] -> everything
			return []*Node{Mul(Add(x, y), ExpandAndBroadcast(Reshape(ReduceAllSum(y), 1, 1), dims, []int{0}))}
		}, false},
		{"short runs", func(x, y *Node) []*Node { // [64,4,1,2] -> [64,4,48,2]: materialized
			s := ReduceSum(Reshape(y, 64, 4, 48, 2), 2)
			return []*Node{Add(Mul(Reshape(x, 64, 4, 48, 2), Reshape(y, 64, 4, 48, 2)), ExpandAndBroadcast(s, []int{64, 4, 48, 2}, []int{2}))}
		}, true},
		{"also a matmul operand", func(x, y *Node) []*Node {
			b := ExpandAndBroadcast(ReduceSum(y, -1), dims, []int{2})
			return []*Node{Add(x, b), Einsum("abi,abj->abij", b, y)}
		}, true},
		{"also an output", func(x, y *Node) []*Node {
			b := ExpandAndBroadcast(ReduceSum(y, 0), dims, []int{0})
			return []*Node{Mul(x, b), b}
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			outs, profs := fusedAndUnfused(t, dims, c.build)
			compareOutputs(t, outs[1], outs[0], 0)
			if !strings.Contains(profs[1], "| BroadcastInDim |") {
				t.Fatalf("the unfused graph runs no BroadcastInDim; profile:\n%s", profs[1])
			}
			if got := strings.Contains(profs[0], "| BroadcastInDim |"); got != c.broadcast {
				t.Errorf("BroadcastInDim runs: %v, want %v; profile:\n%s", got, c.broadcast, profs[0])
			}
			if !strings.Contains(profs[0], "| Fused |") {
				t.Errorf("nothing fused; profile:\n%s", profs[0])
			}
		})
	}
}

// TestRowReductionsAreFused: a Sum, Max or Min over trailing axes whose
// input is an element-wise tree computes the tree block by block and
// reduces its rows (the profile shows "Fused+ReduceSum" and no producer
// ops); other reductions run as before; the results are the unfused
// graph's, bit for bit.
func TestRowReductionsAreFused(t *testing.T) {
	for _, c := range []struct {
		name  string
		dims  []int
		build func(x, y *Node) []*Node
		fused string // the profile row of the fused reduction, "" if none
	}{
		{"sum of a product", []int{64, 4, 96}, func(x, y *Node) []*Node {
			return []*Node{ReduceSum(Mul(x, y), -1)}
		}, "Fused+ReduceSum"},
		{"softmax's sum", []int{64, 65}, func(x, y *Node) []*Node {
			m := ReduceMax(x, -1)
			return []*Node{ReduceSum(Exp(Sub(x, ExpandAndBroadcast(m, []int{64, 65}, []int{1}))), -1)}
		}, "Fused+ReduceSum"},
		{"max of a sum", []int{64, 4, 96}, func(x, y *Node) []*Node {
			return []*Node{ReduceMax(Add(x, MulScalar(y, 3)), -1)}
		}, "Fused+ReduceMax"},
		{"two trailing axes", []int{16, 8, 48}, func(x, y *Node) []*Node {
			return []*Node{ReduceMin(Sub(x, y), 1, 2)}
		}, "Fused+ReduceMin"},
		{"leading axis", []int{64, 4, 96}, func(x, y *Node) []*Node {
			return []*Node{ReduceSum(Mul(x, y), 0)}
		}, ""},
		{"rows too short", []int{1024, 8}, func(x, y *Node) []*Node {
			return []*Node{ReduceSum(Mul(x, y), -1)}
		}, ""},
		{"rows too long", []int{4, 4096}, func(x, y *Node) []*Node {
			return []*Node{ReduceSum(Mul(x, y), -1)}
		}, ""},
		{"product also an output", []int{64, 4, 96}, func(x, y *Node) []*Node {
			p := Mul(x, y)
			return []*Node{ReduceSum(p, -1), p}
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			outs, profs := fusedAndUnfused(t, c.dims, c.build)
			compareOutputs(t, outs[1], outs[0], 0)
			if c.fused == "" {
				if strings.Contains(profs[0], "| Fused+") {
					t.Errorf("a reduction was fused; profile:\n%s", profs[0])
				}
				return
			}
			if !strings.Contains(profs[0], "| "+c.fused+" |") {
				t.Errorf("no %s; profile:\n%s", c.fused, profs[0])
			}
			for _, op := range []string{"Mul", "Add", "Sub", "Exp", "BroadcastInDim"} {
				if strings.Contains(profs[0], "| "+op+" |") {
					t.Errorf("%s still runs; profile:\n%s", op, profs[0])
				}
			}
		})
	}
}

// fusedAndUnfused runs build on two random inputs of dims on the backend
// with and without fusion; it returns the outputs and the op profiles, the
// fused run's first.
func fusedAndUnfused(t *testing.T, dims []int, build func(x, y *Node) []*Node) (outs [2][]*tensors.Tensor, profs [2]string) {
	t.Helper()
	for i, config := range []string{"profile", "profile,nofuse"} {
		b, err := cpu.New(config)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(7, 8))
		x, y := randFloats(r, dims...), randFloats(r, dims...)
		exec := MustNewExec(b, func(x, y *Node) []*Node { return build(x, y) })
		outs[i] = exec.MustExec(x, y)
		profs[i] = b.OpProfile()
	}
	return outs, profs
}
