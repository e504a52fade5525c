package tflite

import (
	"fmt"
	"math"
	"slices"
)

// InterpreterOps are the operators [Interpreter] runs.
var InterpreterOps = []BuiltinOp{OpConv2D, OpDepthwiseConv2D, OpAdd, OpAveragePool2D, OpFullyConnected, OpReshape, OpSqueeze, OpSoftmax}

// Interpreter runs a quantized (uint8 or int8, per-tensor or per-channel
// weights) model's main graph in integer arithmetic, following TFLite's
// reference kernels: convolutions accumulate (q_in - z_in)(q_w - z_w) in
// int32 plus the int32 bias, then rescale with a fixed-point multiplier;
// ADD rescales both inputs to a common scale with 20 extra bits; average
// pooling rounds the window mean; the fused activation clamps in the
// quantized domain. SOFTMAX is computed in float64 from the dequantized
// input and requantized (TFLite uses a fixed-point exp, so its last bit may
// differ); everything before it is integer-exact.
//
// It is a slow, simple reference (single-threaded loops, about a second for
// a 224px MobileNet V2) for checking float re-implementations.
type Interpreter struct {
	m *Model
	g *Graph
}

// NewInterpreter checks that the model's operators and tensor types are
// supported and returns an interpreter for its main graph.
func NewInterpreter(m *Model) (*Interpreter, error) {
	g := m.Main()
	if err := g.CheckOps(InterpreterOps...); err != nil {
		return nil, fmt.Errorf("tflite interpreter: %s: %w", m.Path, err)
	}
	for _, op := range g.Operators {
		for _, o := range op.Outputs {
			t := g.Tensors[o]
			if (t.Type != Uint8 && t.Type != Int8) || t.Quant == nil || t.Quant.PerChannel() {
				return nil, fmt.Errorf("tflite interpreter: %s: operator %d %s: output tensor %s must be uint8 or int8 with per-tensor quantization",
					m.Path, op.Index, op.Code, t)
			}
		}
	}
	return &Interpreter{m: m, g: g}, nil
}

// Run executes the graph on one quantized input (the graph's first input,
// batch 1, flattened in the tensor's layout) and returns the values of every
// tensor the graph computes, indexed by tensor index (nil for constants and
// unused tensors). Dequantize them with [Tensor.Dequantize].
func (it *Interpreter) Run(input []int32) ([][]int32, error) {
	g := it.g
	in := g.Input(0)
	if len(input) != in.NumElements() {
		return nil, fmt.Errorf("tflite interpreter: %s: input %s needs %d values, got %d", it.m.Path, in, in.NumElements(), len(input))
	}
	vals := make([][]int32, len(g.Tensors))
	vals[in.Index] = input
	for _, op := range g.Operators {
		out := g.Tensors[op.Outputs[0]]
		x := vals[op.Inputs[0]]
		if x == nil {
			return nil, fmt.Errorf("tflite interpreter: %s: operator %d %s: input %s is not computed",
				it.m.Path, op.Index, op.Code, g.Tensors[op.Inputs[0]])
		}
		var err error
		var y []int32
		switch op.Code {
		case OpConv2D, OpDepthwiseConv2D, OpFullyConnected:
			y, err = it.conv(op, x)
		case OpAdd:
			y = it.add(op, x, vals[op.Inputs[1]])
		case OpAveragePool2D:
			y = it.avgPool(op, x)
		case OpReshape, OpSqueeze:
			y = slices.Clone(x)
		case OpSoftmax:
			y = it.softmax(op, x)
		}
		if err != nil {
			return nil, fmt.Errorf("tflite interpreter: %s: operator %d %s: %w", it.m.Path, op.Index, op.Code, err)
		}
		if len(y) != out.NumElements() {
			return nil, fmt.Errorf("tflite interpreter: %s: operator %d %s: shape mismatch: computed %d values for output %s",
				it.m.Path, op.Index, op.Code, len(y), out)
		}
		vals[out.Index] = y
	}
	return vals, nil
}

// activationRange returns the quantized clamp range of a fused activation
// for output tensor t (TFLite's CalculateActivationRangeQuantized).
func activationRange(a Activation, t *Tensor) (lo, hi int32) {
	lo, hi = t.QuantRange()
	flo, fhi, ok := a.Range()
	if !ok {
		return lo, hi
	}
	s, z := float64(t.Quant.ScaleAt(0)), int32(t.Quant.ZeroPointAt(0))
	lo = max(lo, z+roundHalfAway(flo/s))
	if !math.IsInf(fhi, 1) {
		hi = min(hi, z+roundHalfAway(fhi/s))
	}
	return lo, hi
}

func clamp32(v, lo, hi int32) int32 { return min(max(v, lo), hi) }

// dims4 returns the NHWC dims of a rank-4 tensor, or of a rank-2 one as [n, 1, 1, c].
func dims4(t *Tensor) (n, h, w, c int) {
	s := t.Shape
	if len(s) == 2 {
		return s[0], 1, 1, s[1]
	}
	return s[0], s[1], s[2], s[3]
}

// padBefore returns TFLite's leading padding for one spatial axis.
func padBefore(p Padding, in, out, k, stride, dilation int) int {
	if p == Valid {
		return 0
	}
	eff := (k-1)*dilation + 1
	return max((out-1)*stride+eff-in, 0) / 2
}

// conv runs CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (a 1x1 conv on [n, in]).
func (it *Interpreter) conv(op *Operator, x []int32) ([]int32, error) {
	g := it.g
	in, w, out := g.Tensors[op.Inputs[0]], g.Tensors[op.Inputs[1]], g.Tensors[op.Outputs[0]]
	bias := g.Tensor(-1)
	if len(op.Inputs) > 2 {
		bias = g.Tensor(op.Inputs[2])
	}
	if w.Data == nil || w.Quant == nil {
		return nil, fmt.Errorf("filter %s must be a quantized constant", w)
	}
	n, ih, iw, ic := dims4(in)
	_, oh, ow, oc := dims4(out)
	if n != 1 {
		return nil, fmt.Errorf("input %s: batch must be 1", in)
	}
	depthwise := op.Code == OpDepthwiseConv2D
	var kh, kw, wc int
	switch {
	case op.Code == OpFullyConnected:
		if len(w.Shape) != 2 || w.Shape[0] != oc || w.Shape[1] != ih*iw*ic {
			return nil, fmt.Errorf("shape mismatch: weights %s for input %v and output %v", w, in.Shape, out.Shape)
		}
		kh, kw, wc = 1, 1, ih*iw*ic
		ic, ih, iw = wc, 1, 1
	case len(w.Shape) != 4:
		return nil, fmt.Errorf("shape mismatch: filter %s must have rank 4", w)
	default:
		kh, kw, wc = w.Shape[1], w.Shape[2], w.Shape[3]
	}
	mult := 1
	if depthwise {
		mult = max(op.Options.DepthMultiplier, 1)
		if w.Shape[0] != 1 || wc != oc || ic*mult != oc {
			return nil, fmt.Errorf("shape mismatch: depthwise filter %s for %d input and %d output channels", w, ic, oc)
		}
	} else if op.Code == OpConv2D && (w.Shape[0] != oc || wc != ic) {
		return nil, fmt.Errorf("shape mismatch: filter %s for %d input and %d output channels", w, ic, oc)
	}
	wq, err := w.Ints()
	if err != nil {
		return nil, err
	}
	// Per output channel: zero-point-corrected weights, multiplier and bias.
	chanAxis := 0
	if depthwise {
		chanAxis = 3
	}
	inner := 1
	for _, d := range w.Shape[chanAxis+1:] {
		inner *= d
	}
	wv := make([]int32, len(wq))
	for i, v := range wq {
		wv[i] = v - int32(w.Quant.ZeroPointAt((i/inner)%oc))
	}
	bv := make([]int32, oc)
	if bias != nil {
		b, err := bias.Ints()
		if err != nil {
			return nil, err
		}
		if len(b) != oc {
			return nil, fmt.Errorf("shape mismatch: bias %s for %d output channels", bias, oc)
		}
		copy(bv, b)
	}
	inScale, outScale := float64(in.Quant.ScaleAt(0)), float64(out.Quant.ScaleAt(0))
	mq := make([]int32, oc)
	ms := make([]int, oc)
	for c := range oc {
		mq[c], ms[c] = quantizeMultiplier(inScale * float64(w.Quant.ScaleAt(c)) / outScale)
	}
	xz := int32(in.Quant.ZeroPointAt(0))
	xv := make([]int32, len(x))
	for i, v := range x {
		xv[i] = v - xz
	}
	oz := int32(out.Quant.ZeroPointAt(0))
	lo, hi := activationRange(op.Options.Activation, out)
	o := op.Options
	sh, sw := max(o.StrideH, 1), max(o.StrideW, 1)
	dh, dw := max(o.DilationH, 1), max(o.DilationW, 1)
	py, px := padBefore(o.Padding, ih, oh, kh, sh, dh), padBefore(o.Padding, iw, ow, kw, sw, dw)
	y := make([]int32, oh*ow*oc)
	acc := make([]int32, oc)
	for oy := range oh {
		for ox := range ow {
			copy(acc, bv)
			for ky := range kh {
				iy := oy*sh - py + ky*dh
				if iy < 0 || iy >= ih {
					continue
				}
				for kx := range kw {
					ix := ox*sw - px + kx*dw
					if ix < 0 || ix >= iw {
						continue
					}
					xs := xv[(iy*iw+ix)*ic : (iy*iw+ix+1)*ic]
					if depthwise {
						ws := wv[(ky*kw+kx)*oc : (ky*kw+kx+1)*oc]
						for c := range oc {
							acc[c] += xs[c/mult] * ws[c]
						}
						continue
					}
					for c := range oc {
						ws := wv[((c*kh+ky)*kw+kx)*ic : ((c*kh+ky)*kw+kx+1)*ic]
						var s int32
						for k, v := range xs {
							s += v * ws[k]
						}
						acc[c] += s
					}
				}
			}
			ys := y[(oy*ow+ox)*oc : (oy*ow+ox+1)*oc]
			for c := range oc {
				ys[c] = clamp32(multiplyByQuantizedMultiplier(acc[c], mq[c], ms[c])+oz, lo, hi)
			}
		}
	}
	return y, nil
}

// add runs ADD of two same-shape tensors (TFLite's quantized AddElementwise).
func (it *Interpreter) add(op *Operator, a, b []int32) []int32 {
	g := it.g
	ta, tb, out := g.Tensors[op.Inputs[0]], g.Tensors[op.Inputs[1]], g.Tensors[op.Outputs[0]]
	const leftShift = 20
	sa, sb, so := float64(ta.Quant.ScaleAt(0)), float64(tb.Quant.ScaleAt(0)), float64(out.Quant.ScaleAt(0))
	twiceMax := 2 * max(sa, sb)
	ma, sha := quantizeMultiplier(sa / twiceMax)
	mb, shb := quantizeMultiplier(sb / twiceMax)
	mo, sho := quantizeMultiplier(twiceMax / (float64(int(1)<<leftShift) * so))
	za, zb, zo := int32(ta.Quant.ZeroPointAt(0)), int32(tb.Quant.ZeroPointAt(0)), int32(out.Quant.ZeroPointAt(0))
	lo, hi := activationRange(op.Options.Activation, out)
	y := make([]int32, len(a))
	for i := range a {
		va := multiplyByQuantizedMultiplier((a[i]-za)*(1<<leftShift), ma, sha)
		vb := multiplyByQuantizedMultiplier((b[i]-zb)*(1<<leftShift), mb, shb)
		y[i] = clamp32(multiplyByQuantizedMultiplier(va+vb, mo, sho)+zo, lo, hi)
	}
	return y
}

// avgPool runs AVERAGE_POOL_2D: the rounded mean of the valid window elements.
func (it *Interpreter) avgPool(op *Operator, x []int32) []int32 {
	g := it.g
	in, out := g.Tensors[op.Inputs[0]], g.Tensors[op.Outputs[0]]
	_, ih, iw, c := dims4(in)
	_, oh, ow, _ := dims4(out)
	o := op.Options
	py, px := padBefore(o.Padding, ih, oh, o.FilterH, o.StrideH, 1), padBefore(o.Padding, iw, ow, o.FilterW, o.StrideW, 1)
	lo, hi := activationRange(o.Activation, out)
	y := make([]int32, oh*ow*c)
	acc := make([]int32, c)
	for oy := range oh {
		for ox := range ow {
			clear(acc)
			count := int32(0)
			for ky := range o.FilterH {
				iy := oy*o.StrideH - py + ky
				if iy < 0 || iy >= ih {
					continue
				}
				for kx := range o.FilterW {
					ix := ox*o.StrideW - px + kx
					if ix < 0 || ix >= iw {
						continue
					}
					count++
					for ch, v := range x[(iy*iw+ix)*c : (iy*iw+ix+1)*c] {
						acc[ch] += v
					}
				}
			}
			for ch := range c {
				y[(oy*ow+ox)*c+ch] = clamp32((acc[ch]+count/2)/count, lo, hi)
			}
		}
	}
	return y
}

// softmax runs SOFTMAX over the last axis in float64 and requantizes.
func (it *Interpreter) softmax(op *Operator, x []int32) []int32 {
	g := it.g
	in, out := g.Tensors[op.Inputs[0]], g.Tensors[op.Outputs[0]]
	d := in.Shape[len(in.Shape)-1]
	beta := float64(op.Options.Beta)
	if beta == 0 {
		beta = 1
	}
	real := in.Dequantize(x)
	lo, hi := out.QuantRange()
	s, z := float64(out.Quant.ScaleAt(0)), int32(out.Quant.ZeroPointAt(0))
	y := make([]int32, len(x))
	for r := 0; r < len(x); r += d {
		row := real[r : r+d]
		m := float64(slices.Max(row))
		var sum float64
		e := make([]float64, d)
		for i, v := range row {
			e[i] = math.Exp(beta * (float64(v) - m))
			sum += e[i]
		}
		for i := range row {
			y[r+i] = clamp32(z+roundHalfAway(e[i]/sum/s), lo, hi)
		}
	}
	return y
}
