package cpu_test

import (
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.

	"github.com/peco-dev/peco/cpu"
)

// TestFLOPsCountedFromTheGraph checks the FLOPs the backend counts for an
// execution against numbers worked out by hand: matmuls 2*M*N*K per batch
// entry, convolutions 2 x output elements x taps x input channels per
// group, element-wise ops not at all.
func TestFLOPsCountedFromTheGraph(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	cases := []struct {
		name   string
		fn     func(in []*Node) []*Node
		inputs []any
		want   int64
	}{
		// [2,3] x [3,4]: 2*2*4*3 = 48; the Add and Exp count nothing.
		{"matmul", func(in []*Node) []*Node { return []*Node{Exp(AddScalar(Dot(in[0], in[1]).Product(), 1))} },
			[]any{randFloats(r, 2, 3), randFloats(r, 3, 4)}, 48},
		// batch 5 of [2,3] x [3,4]: 5*48.
		{"batched matmul", func(in []*Node) []*Node {
			return []*Node{Dot(in[0], in[1]).General([]int{2}, []int{0}, []int{1}, []int{0})}
		}, []any{randFloats(r, 5, 2, 3), randFloats(r, 5, 3, 4)}, 240},
		// [1,5,5,2] * [3,3,2,4], SAME: 100 outputs x 9 taps x 2 channels x 2 = 3600.
		{"conv 3x3", func(in []*Node) []*Node { return []*Node{Convolve(in[0], in[1]).PadSame().Done()} },
			[]any{randFloats(r, 1, 5, 5, 2), randFloats(r, 3, 3, 2, 4)}, 3600},
		// stride 2, no padding: [1,2,2,4] = 16 outputs x 9 x 2 x 2 = 576.
		{"conv stride 2", func(in []*Node) []*Node { return []*Node{Convolve(in[0], in[1]).Strides(2).Done()} },
			[]any{randFloats(r, 1, 5, 5, 2), randFloats(r, 3, 3, 2, 4)}, 576},
		// depthwise, 4 groups of 1 channel: [2,4,4,4] = 128 outputs x 9 taps x 1 x 2 = 2304.
		{"conv depthwise", func(in []*Node) []*Node {
			return []*Node{Convolve(in[0], in[1]).ChannelGroupCount(4).PadSame().Done()}
		}, []any{randFloats(r, 2, 4, 4, 4), randFloats(r, 3, 3, 1, 4)}, 2304},
		// Forward and both gradients of a SAME 3x3 conv: the forward 3600, the
		// input gradient (dy [1,5,5,4] with the flipped kernel, 50 outputs x 9
		// taps x 4 channels x 2) 3600, the kernel gradient (72 kernel elements
		// x 25 positions x 2) 3600.
		{"conv gradients", func(in []*Node) []*Node {
			y := Convolve(in[0], in[1]).PadSame().Done()
			return Gradient(ReduceAllSum(Mul(y, y)), in[0], in[1])
		}, []any{randFloats(r, 1, 5, 5, 2), randFloats(r, 3, 3, 2, 4)}, 3 * 3600},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := cpu.New("")
			if err != nil {
				t.Fatal(err)
			}
			exec := MustNewExec(b, tc.fn)
			for run := 1; run <= 2; run++ {
				if _, err := exec.Exec(tc.inputs...); err != nil {
					t.Fatal(err)
				}
				if got := b.FLOPs(); got != int64(run)*tc.want {
					t.Fatalf("after %d executions: %d FLOPs, want %d", run, got, int64(run)*tc.want)
				}
			}
		})
	}
}

// TestOpTimesProfile checks the profile option's op times: the ConvGeneral
// variants named, FLOPs attached to them, and a reset clearing them.
func TestOpTimesProfile(t *testing.T) {
	b, err := cpu.New("profile")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 10))
	exec := MustNewExec(b, func(x, k *Node) []*Node {
		y := Convolve(x, k).Strides(2).PadSame().Done()
		return Gradient(ReduceAllSum(Mul(y, y)), x, k)
	})
	if _, err := exec.Exec(randFloats(r, 2, 6, 6, 3), randFloats(r, 3, 3, 3, 4)); err != nil {
		t.Fatal(err)
	}
	got := map[string]cpu.OpTime{}
	var flops int64
	for _, o := range b.OpTimes() {
		got[o.Op] = o
		flops += o.FLOPs
	}
	for _, op := range []string{"ConvGeneral/forward", "ConvGeneral/input-dilated", "ConvGeneral/kernel-grad"} {
		if o, ok := got[op]; !ok || o.Runs != 1 || o.FLOPs <= 0 {
			t.Errorf("op %s: %+v (profile %v)", op, o, b.OpTimes())
		}
	}
	if flops != b.FLOPs() {
		t.Errorf("profile FLOPs %d, backend %d", flops, b.FLOPs())
	}
	b.ResetOpProfile()
	if len(b.OpTimes()) != 0 {
		t.Errorf("after reset: %v", b.OpTimes())
	}
	if nb, _ := cpu.New(""); nb.OpTimes() != nil || nb.OpProfile() != "" {
		t.Errorf("profile off: op times %v", nb.OpTimes())
	}
}
