package vit

import (
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph ops read like math.
)

// This file holds the float32 attention core used by attention(): the same
// math as the plain graph (softmax(q k^T / sqrt(hd) + bias) v, see
// attentionPlain), laid out for the pure-Go backend's matmul kernels, with a
// hand-written gradient.
//
// Why: the Go backend runs every matmul whose per-batch M*N*K is below 4M
// (all of attention's [65 x 64] x [64 x 65] products) in a "small" kernel.
// Its LayoutNonTransposed variant (lhs [batch, M, K], rhs [batch, K, N])
// keeps 4x16 output tiles in registers; any other layout is transposed to
// LayoutTransposed (rhs [batch, N, K]), whose kernel does one horizontal
// vector reduction per output element and was ~35% of the MIM step's CPU
// time. Autodiff of DotGeneral always produces one gradient in an
// incompatible layout (contracting axis of the lhs not last), so the
// backward pass is written by hand here: all six batched matmuls (2 forward,
// 4 backward) are [N, M, K] x [N, K, P] with N = batch*heads, and the
// explicit transposes between them are of [N, 65, 64]-sized tensors.
//
// The layout is chosen by the config (packed_attention), never by asking
// which backend runs the graph.
//
// The custom gradient uses only GoMLX's public API: the inputs that need a
// gradient (qkv and the optional bias) and the stop-gradient output are
// packed into one vector that passes through IdentityWithCustomGradient; the
// output is sliced back out of it, so the identity receives the output's
// adjoint, and returns the inputs' gradients (and zero for the output part),
// which Concatenate's own gradient routes back to qkv and bias.

// attentionCore computes multi-head attention on qkv [3, B*H, T, hd] (q, k,
// v stacked, heads merged into the batch axis) with an optional bias
// [H, T, T] added to the logits; it returns [B*H, T, hd]. Gradients flow to
// qkv and bias.
func attentionCore(qkv, bias *Node, batch, heads int, scale float64) *Node {
	n, t, hd := qkv.Shape().Dim(1), qkv.Shape().Dim(2), qkv.Shape().Dim(3)
	qkvS := StopGradient(qkv)
	q := Reshape(SliceAxis(qkvS, 0, AxisElem(0)), n, t, hd)
	k := Reshape(SliceAxis(qkvS, 0, AxisElem(1)), n, t, hd)
	v := Reshape(SliceAxis(qkvS, 0, AxisElem(2)), n, t, hd)

	// Forward: s = (q*scale) k^T (+ bias); p = softmax(s); o = p v.
	qs := MulScalar(q, scale)
	s := bmm(qs, TransposeAllAxes(k, 0, 2, 1)) // [N, T, T]
	var biasS *Node
	if bias != nil {
		biasS = StopGradient(bias)
		s = Reshape(Add(Reshape(s, batch, heads, t, t), Reshape(biasS, 1, heads, t, t)), n, t, t)
	}
	p := Softmax(s, -1)
	o := bmm(p, v) // [N, T, hd]

	// Pack [qkv | bias | o] so the identity sees o's adjoint and returns the
	// inputs' gradients.
	parts := []*Node{Reshape(qkv, -1)}
	if bias != nil {
		parts = append(parts, Reshape(bias, -1))
	}
	oFlat := Reshape(StopGradient(o), -1)
	oStart := 0
	for _, part := range parts {
		oStart += part.Shape().Size()
	}
	oEnd := oStart + oFlat.Shape().Size()
	parts = append(parts, oFlat)
	packed := IdentityWithCustomGradient(Concatenate(parts, 0), func(_, adj *Node) *Node {
		dO := Reshape(Slice(adj, AxisRange(oStart, oEnd)), n, t, hd)
		dP := bmm(dO, TransposeAllAxes(v, 0, 2, 1))                     // [N, T, T]
		dV := bmm(TransposeAllAxes(p, 0, 2, 1), dO)                     // [N, T, hd]
		dS := Mul(p, Sub(dP, ReduceAndKeep(Mul(dP, p), ReduceSum, -1))) // softmax backward
		dQ := MulScalar(bmm(dS, k), scale)                              // [N, T, hd]
		dK := bmm(TransposeAllAxes(dS, 0, 2, 1), qs)                    // [N, T, hd]
		grads := []*Node{Reshape(Stack([]*Node{dQ, dK, dV}, 0), -1)}
		if bias != nil {
			grads = append(grads, Reshape(ReduceSum(Reshape(dS, batch, heads, t, t), 0), -1))
		}
		grads = append(grads, ZerosLike(oFlat))
		return Concatenate(grads, 0)
	})
	return Reshape(Slice(packed, AxisRange(oStart, oEnd)), n, t, hd)
}

// bmm is the batched matmul a [N, M, K] x b [N, K, P] -> [N, M, P], in the
// Go backend's LayoutNonTransposed.
func bmm(a, b *Node) *Node {
	return DotGeneral(a, []int{2}, []int{0}, b, []int{1}, []int{0})
}

// linear is x [..., in] @ w [in, out] -> [..., out] with a hand-written
// gradient laid out for the Go backend (same packing trick as attentionCore).
// Autodiff's weight gradient contracts both operands over their leading
// (row) axis, a layout the Go backend only runs after transposing both the
// input and the output gradient with its generic (element-by-element)
// transpose; here dW transposes only the smaller of the two (and, if that is
// the output gradient, the small [out, in] result). dX = dY w^T needs no
// transpose.
func linear(x, w *Node) *Node {
	in, out := w.Shape().Dim(0), w.Shape().Dim(1)
	rows := x.Shape().Size() / in
	outDims := append(x.Shape().Clone().Dimensions[:x.Rank()-1:x.Rank()-1], out)
	xS := Reshape(StopGradient(x), rows, in)
	wS := StopGradient(w)
	y := DotGeneral(xS, []int{1}, nil, wS, []int{0}, nil) // [rows, out]
	xFlat, wFlat, yFlat := Reshape(x, -1), Reshape(w, -1), Reshape(StopGradient(y), -1)
	yStart := xFlat.Shape().Size() + wFlat.Shape().Size()
	yEnd := yStart + yFlat.Shape().Size()
	packed := IdentityWithCustomGradient(Concatenate([]*Node{xFlat, wFlat, yFlat}, 0), func(_, adj *Node) *Node {
		dY := Reshape(Slice(adj, AxisRange(yStart, yEnd)), rows, out)
		dX := DotGeneral(dY, []int{1}, nil, wS, []int{1}, nil) // [rows, in]
		var dW *Node
		if in <= out {
			dW = DotGeneral(TransposeAllAxes(xS, 1, 0), []int{1}, nil, dY, []int{0}, nil) // [in, out]
		} else {
			dWT := DotGeneral(TransposeAllAxes(dY, 1, 0), []int{1}, nil, xS, []int{0}, nil) // [out, in]
			dW = TransposeAllAxes(dWT, 1, 0)
		}
		return Concatenate([]*Node{Reshape(dX, -1), Reshape(dW, -1), ZerosLike(yFlat)}, 0)
	})
	return Reshape(Slice(packed, AxisRange(yStart, yEnd)), outDims...)
}
