package vit

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
)

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

func backend(t *testing.T) compute.Backend {
	t.Helper()
	return gobackend.GetBackend()
}

// tinyConfig is a 16px, patch 4 (4x4 grid), dim 32, depth 2, 2-head ViT.
func tinyConfig() Config {
	c := DefaultConfig()
	c.ImageSize, c.PatchSize = 16, 4
	c.Dim, c.Depth, c.Heads = 32, 2, 2
	c.Preset = ""
	return c
}

func newViT(t *testing.T, c Config) *ViT {
	t.Helper()
	m, err := NewViT(c)
	if err != nil {
		t.Fatalf("NewViT: %v", err)
	}
	return m
}

func newStore(t *testing.T, seed int64) *model.Store {
	t.Helper()
	s := model.NewStore()
	if err := s.SetRNGStateFromSeed(seed); err != nil {
		t.Fatal(err)
	}
	return s
}

func randFloats(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

func randTensor(r *rand.Rand, dims ...int) (*tensors.Tensor, []float32) {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := randFloats(r, n)
	return tensors.FromFlatDataAndDimensions(slices.Clone(data), dims...), data
}

func flat(t *testing.T, x *tensors.Tensor) []float32 {
	t.Helper()
	return tensors.MustCopyFlatData[float32](x)
}

func varValue(t *testing.T, s *model.Store, path string) []float32 {
	t.Helper()
	v := s.GetVariable(path)
	if v == nil {
		t.Fatalf("variable %q not found", path)
	}
	return flat(t, v.MustValue())
}

// setVar creates the variable at path with random normal values (scaled).
func setVar(t *testing.T, s *model.Store, r *rand.Rand, path string, scale float32, dims ...int) {
	t.Helper()
	tensor, _ := randTensor(r, dims...)
	tensors.MustMutableFlatData(tensor, func(f []float32) {
		for i := range f {
			f[i] *= scale
		}
	})
	if _, err := s.CreateVariable(path, tensor); err != nil {
		t.Fatal(err)
	}
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > tol*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: element %d: got %g, want %g (|diff| %g)", what, i, got[i], want[i], d)
		}
	}
}

func TestForwardShapes(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
	}{
		{"default-options", func(*Config) {}},
		{"no-cls", func(c *Config) { c.UseCLS = false }},
		{"shared-rel-pos-no-abs", func(c *Config) { c.RelPosBias = RelPosShared; c.AbsPosEmb = false }},
		{"per-layer-rel-pos-no-cls", func(c *Config) { c.RelPosBias = RelPosPerLayer; c.UseCLS = false }},
		{"layer-scale-drop-path-depth3", func(c *Config) { c.LayerScale = 0.1; c.DropPath = 0.2; c.Depth = 3 }},
		{"depth0", func(c *Config) { c.Depth = 0 }},
		{"bfloat16", func(c *Config) { c.DType = "bfloat16"; c.Depth = 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig()
			tc.edit(&c)
			m := newViT(t, c)
			const batch = 2
			var feats core.Features
			outs := model.MustNewExec(backend(t), newStore(t, 1), func(scope *model.Scope, images *Node) []*Node {
				feats = m.Forward(scope, images, core.ForwardOptions{Training: true})
				return append([]*Node{feats.Tokens}, feats.Layers...)
			}).MustCall(tensors.FromShape(shapesF32(batch, 16, 16, 3)))
			tokens := 16
			if c.UseCLS {
				tokens++
			}
			want := []int{batch, tokens, c.Dim}
			for i, o := range outs {
				if !slices.Equal(o.Shape().Dimensions, want) || o.DType() != dtypes.Float32 {
					t.Errorf("output %d: shape %s, want float32 %v", i, o.Shape(), want)
				}
				for _, v := range flat(t, o) {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("output %d has non-finite values", i)
					}
				}
			}
			if len(feats.Layers) != c.Depth {
				t.Errorf("len(Layers) = %d, want depth %d", len(feats.Layers), c.Depth)
			}
			if feats.HasCLS != c.UseCLS || feats.GridH != 4 || feats.GridW != 4 {
				t.Errorf("HasCLS=%v GridH=%d GridW=%d, want %v 4 4", feats.HasCLS, feats.GridH, feats.GridW, c.UseCLS)
			}
			if m.NumTokens() != tokens {
				t.Errorf("NumTokens() = %d, want %d", m.NumTokens(), tokens)
			}
		})
	}
}

// naiveAttention computes BEiT's attention in plain Go loops for x [B, T, D].
// bias is [H, T, T] (may be nil).
func naiveAttention(x []float32, b, tt, d, heads int, wqkv, qBias, vBias, wProj, bProj, bias []float32) []float32 {
	hd := d / heads
	scale := 1 / math.Sqrt(float64(hd))
	qkv := make([]float64, b*tt*3*d)
	for bi := range b {
		for ti := range tt {
			for o := range 3 * d {
				s := 0.0
				for i := range d {
					s += float64(x[(bi*tt+ti)*d+i]) * float64(wqkv[i*3*d+o])
				}
				switch {
				case o < d:
					s += float64(qBias[o])
				case o >= 2*d:
					s += float64(vBias[o-2*d])
				}
				qkv[(bi*tt+ti)*3*d+o] = s
			}
		}
	}
	// Column o of qkv is (which, head, k) = (o / d, (o % d) / hd, o % hd).
	at := func(bi, ti, which, h, k int) float64 { return qkv[(bi*tt+ti)*3*d+which*d+h*hd+k] }
	ctx := make([]float64, b*tt*d)
	for bi := range b {
		for h := range heads {
			for i := range tt {
				logits := make([]float64, tt)
				maxL := math.Inf(-1)
				for j := range tt {
					s := 0.0
					for k := range hd {
						s += at(bi, i, 0, h, k) * scale * at(bi, j, 1, h, k)
					}
					if bias != nil {
						s += float64(bias[(h*tt+i)*tt+j])
					}
					logits[j] = s
					maxL = math.Max(maxL, s)
				}
				sum := 0.0
				for j := range logits {
					logits[j] = math.Exp(logits[j] - maxL)
					sum += logits[j]
				}
				for k := range hd {
					s := 0.0
					for j := range tt {
						s += logits[j] / sum * at(bi, j, 2, h, k)
					}
					ctx[(bi*tt+i)*d+h*hd+k] = s
				}
			}
		}
	}
	out := make([]float32, b*tt*d)
	for r := range b * tt {
		for o := range d {
			s := float64(bProj[o])
			for i := range d {
				s += ctx[r*d+i] * float64(wProj[i*d+o])
			}
			out[r*d+o] = float32(s)
		}
	}
	return out
}

func TestAttentionMatchesNaive(t *testing.T) {
	for _, mode := range []string{"external-bias", RelPosPerLayer} {
		t.Run(mode, func(t *testing.T) {
			c := tinyConfig()
			c.ImageSize, c.PatchSize, c.Dim, c.Heads = 8, 4, 8, 2 // 2x2 grid + CLS: T = 5, head_dim 4.
			if mode == RelPosPerLayer {
				c.RelPosBias = RelPosPerLayer
			}
			m := newViT(t, c)
			const b, tt, d, heads = 2, 5, 8, 2
			r := rand.New(rand.NewPCG(7, 8))
			store := newStore(t, 2)
			setVar(t, store, r, "/attn/qkv/weight", 0.5, d, 3*d)
			setVar(t, store, r, "/attn/q_bias", 0.5, d)
			setVar(t, store, r, "/attn/v_bias", 0.5, d)
			setVar(t, store, r, "/attn/proj/weight", 0.5, d, d)
			setVar(t, store, r, "/attn/proj/bias", 0.5, d)
			numRel := 3*3 + 3
			if mode == RelPosPerLayer {
				setVar(t, store, r, "/attn/rel_pos_bias_table", 1, numRel, heads)
			}
			xT, x := randTensor(r, b, tt, d)
			biasT, bias := randTensor(r, heads, tt, tt)

			got := model.MustNewExec(backend(t), store, func(scope *model.Scope, x, bias *Node) *Node {
				if mode == RelPosPerLayer {
					bias = nil
				}
				return m.attention(scope.At("attn"), x, bias, c.InitStd)
			}).MustCall(xT, biasT)[0]

			if mode == RelPosPerLayer {
				// Expand the table with BEiT's index, laid out [H, T, T].
				table := varValue(t, store, "/attn/rel_pos_bias_table")
				idx := relativePositionIndex(2, 2)
				for h := range heads {
					for i := range tt {
						for j := range tt {
							bias[(h*tt+i)*tt+j] = table[idx[i][j]*heads+h]
						}
					}
				}
			}
			want := naiveAttention(x, b, tt, d, heads,
				varValue(t, store, "/attn/qkv/weight"), varValue(t, store, "/attn/q_bias"),
				varValue(t, store, "/attn/v_bias"), varValue(t, store, "/attn/proj/weight"),
				varValue(t, store, "/attn/proj/bias"), bias)
			assertClose(t, "attention", flat(t, got), want, 1e-4)

			// Guard on the reference itself: a different head split and scale must not match.
			wrong := naiveAttention(x, b, tt, d, 1,
				varValue(t, store, "/attn/qkv/weight"), varValue(t, store, "/attn/q_bias"),
				varValue(t, store, "/attn/v_bias"), varValue(t, store, "/attn/proj/weight"),
				varValue(t, store, "/attn/proj/bias"), nil)
			if slices.Equal(wrong, want) {
				t.Fatal("reference is insensitive to the head layout")
			}
		})
	}
}

// naivePatchEmbed projects each p x p patch of images [B, S, S, C] directly.
func naivePatchEmbed(img []float32, b, s, c, p, d int, w, bias []float32) []float32 {
	g := s / p
	out := make([]float32, b*g*g*d)
	for bi := range b {
		for gy := range g {
			for gx := range g {
				n := gy*g + gx
				for o := range d {
					sum := float64(bias[o])
					for py := range p {
						for px := range p {
							for ch := range c {
								pix := img[((bi*s+gy*p+py)*s+gx*p+px)*c+ch]
								sum += float64(pix) * float64(w[((py*p+px)*c+ch)*d+o])
							}
						}
					}
					out[(bi*g*g+n)*d+o] = float32(sum)
				}
			}
		}
	}
	return out
}

func TestPatchEmbedMatchesPerPatch(t *testing.T) {
	c := tinyConfig()
	c.ImageSize, c.PatchSize, c.Dim, c.Heads = 12, 4, 8, 2 // 3x3 grid.
	m := newViT(t, c)
	r := rand.New(rand.NewPCG(3, 4))
	store := newStore(t, 3)
	setVar(t, store, r, "/patch_embed/bias", 1, 8)
	imgT, img := randTensor(r, 2, 12, 12, 3)
	got := model.MustNewExec(backend(t), store, func(scope *model.Scope, images *Node) *Node {
		return m.patchEmbed(scope.At("patch_embed"), images)
	}).MustCall(imgT)[0]
	if want := []int{2, 9, 8}; !slices.Equal(got.Shape().Dimensions, want) {
		t.Fatalf("shape %v, want %v", got.Shape().Dimensions, want)
	}
	want := naivePatchEmbed(img, 2, 12, 3, 4, 8, varValue(t, store, "/patch_embed/weight"), varValue(t, store, "/patch_embed/bias"))
	assertClose(t, "patch embedding", flat(t, got), want, 1e-4)
}

func TestMaskTokenReplacesMaskedPatches(t *testing.T) {
	c := tinyConfig()
	c.ImageSize, c.PatchSize, c.Dim, c.Heads, c.Depth = 8, 4, 8, 2, 0 // 2x2 grid, T = 5.
	m := newViT(t, c)
	r := rand.New(rand.NewPCG(5, 6))
	store := newStore(t, 4)
	imgT, img := randTensor(r, 2, 8, 8, 3)
	mask := [][]bool{{true, false, false, true}, {false, false, false, false}}
	outs := model.MustNewExec(backend(t), store, func(scope *model.Scope, images, mask *Node) []*Node {
		emb := m.Embed(scope, images, mask)
		tokens := m.Forward(scope, images, core.ForwardOptions{Mask: mask}).Tokens // depth 0: LN(emb).
		return []*Node{emb, tokens}
	}).MustCall(imgT, tensors.FromValue(mask))
	emb, tokens := flat(t, outs[0]), flat(t, outs[1])

	const d, n = 8, 4
	proj := naivePatchEmbed(img, 2, 8, 3, 4, d, varValue(t, store, "/patch_embed/weight"), varValue(t, store, "/patch_embed/bias"))
	cls, maskTok, pos := varValue(t, store, "/cls_token"), varValue(t, store, "/mask_token"), varValue(t, store, "/pos_embed")
	want := make([]float32, 0, 2*(n+1)*d)
	for b := range 2 {
		for k := range d {
			want = append(want, cls[k]+pos[k])
		}
		for j := range n {
			for k := range d {
				v := proj[(b*n+j)*d+k]
				if mask[b][j] {
					v = maskTok[k]
				}
				want = append(want, v+pos[(1+j)*d+k])
			}
		}
	}
	assertClose(t, "embedding", emb, want, 1e-4)

	// Final LayerNorm (weight 1, bias 0 at init, eps 1e-6).
	var wantLN []float32
	for r := range len(want) / d {
		row := want[r*d : (r+1)*d]
		mean, variance := 0.0, 0.0
		for _, v := range row {
			mean += float64(v) / d
		}
		for _, v := range row {
			variance += (float64(v) - mean) * (float64(v) - mean) / d
		}
		for _, v := range row {
			wantLN = append(wantLN, float32((float64(v)-mean)/math.Sqrt(variance+1e-6)))
		}
	}
	assertClose(t, "final LayerNorm", tokens, wantLN, 1e-3)
}

func TestDropPathKeepsExpectation(t *testing.T) {
	const batch, rate = 4000, 0.5
	r := rand.New(rand.NewPCG(9, 10))
	pattern := randFloats(r, 6)
	data := make([]float32, 0, batch*6)
	for range batch {
		data = append(data, pattern...)
	}
	x := tensors.FromFlatDataAndDimensions(data, batch, 3, 2)
	out := model.MustNewExec(backend(t), newStore(t, 5), func(scope *model.Scope, x *Node) *Node {
		return DropPath(scope, x, rate)
	}).MustCall(x)[0]
	y := flat(t, out)
	kept := 0
	mean := make([]float64, 6)
	for b := range batch {
		row := y[b*6 : (b+1)*6]
		dropped := slices.Equal(row, make([]float32, 6))
		if !dropped {
			kept++
			for k := range row {
				if math.Abs(float64(row[k]-pattern[k]/(1-rate))) > 1e-5 {
					t.Fatalf("sample %d: element %d = %g, want 0 or x/(1-p) = %g", b, k, row[k], pattern[k]/(1-rate))
				}
			}
		}
		for k := range row {
			mean[k] += float64(row[k]) / batch
		}
	}
	if frac := float64(kept) / batch; math.Abs(frac-(1-rate)) > 0.04 {
		t.Errorf("kept fraction %.3f, want %.2f", frac, 1-rate)
	}
	for k := range mean {
		// Standard error of the mean is |x| / sqrt(batch) ~ 0.016|x|; allow 5 of them.
		if math.Abs(mean[k]-float64(pattern[k])) > 0.08*math.Abs(float64(pattern[k]))+1e-3 {
			t.Errorf("mean of element %d = %.4f, want %.4f", k, mean[k], pattern[k])
		}
	}
}

func TestDropPathRatesIncreaseLinearly(t *testing.T) {
	c := tinyConfig()
	c.Depth, c.DropPath = 5, 0.2
	m := newViT(t, c)
	want := []float64{0, 0.05, 0.1, 0.15, 0.2}
	for i, w := range want {
		if got := m.dropPathRate(i); math.Abs(got-w) > 1e-12 {
			t.Errorf("block %d: rate %g, want %g", i, got, w)
		}
	}
}

func TestRelativePositionIndex2x2(t *testing.T) {
	// By hand from BEiT's formula: (dh+1)*3 + (dw+1) for patches; R = 3*3+3 = 12,
	// CLS->patch 9, patch->CLS 10, CLS->CLS 11.
	want := [][]int{
		{11, 9, 9, 9, 9},
		{10, 4, 3, 1, 0},
		{10, 5, 4, 2, 1},
		{10, 7, 6, 4, 3},
		{10, 8, 7, 5, 4},
	}
	got := relativePositionIndex(2, 2)
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func TestValidateNamesField(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"heads", func(c *Config) { c.Heads = 3 }},
		{"patch_size", func(c *Config) { c.PatchSize = 5 }},
		{"image_size", func(c *Config) { c.ImageSize = 0 }},
		{"in_channels", func(c *Config) { c.InChannels = 0 }},
		{"dim", func(c *Config) { c.Dim = 0 }},
		{"depth", func(c *Config) { c.Depth = -1 }},
		{"mlp_ratio", func(c *Config) { c.MLPRatio = 0 }},
		{"rel_pos_bias", func(c *Config) { c.RelPosBias = "relative" }},
		{"layer_scale", func(c *Config) { c.LayerScale = -0.1 }},
		{"drop_path", func(c *Config) { c.DropPath = 1 }},
		{"drop_path", func(c *Config) { c.DropPath = -0.1 }},
		{"layer_norm_eps", func(c *Config) { c.LayerNormEps = 0 }},
		{"init_std", func(c *Config) { c.InitStd = -1 }},
		{"preset", func(c *Config) { c.Preset = "huge" }},
		{"dtype", func(c *Config) { c.DType = "float16" }},
	}
	for _, tc := range cases {
		c := tinyConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil {
			t.Errorf("%s: no error", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted an invalid config", tc.field)
		}
	}
	if err := tinyConfig().Validate(); err != nil {
		t.Errorf("tiny config: %v", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

func TestPresets(t *testing.T) {
	d := DefaultConfig().Resolve()
	if d.Dim != 192 || d.Depth != 12 || d.Heads != 3 || d.ImageSize != 224 || d.PatchSize != 16 {
		t.Errorf("default resolves to dim %d depth %d heads %d image %d patch %d, want ViT-Tiny/16 on 224px",
			d.Dim, d.Depth, d.Heads, d.ImageSize, d.PatchSize)
	}
	c := DefaultConfig()
	c.Preset = "large"
	c.Depth = 6 // Set fields win over the preset.
	c = c.Resolve()
	if c.Dim != 1024 || c.Depth != 6 || c.Heads != 16 {
		t.Errorf("large with depth 6: got %d/%d/%d", c.Dim, c.Depth, c.Heads)
	}
}

func TestRegistry(t *testing.T) {
	e, ok := core.Backbones.Lookup("vit")
	if !ok {
		t.Fatal("vit not registered")
	}
	cfg := e.NewConfig().(*Config)
	cfg.Preset = "small"
	b, err := core.Backbones.Build("vit", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.Dim() != 384 {
		t.Errorf("Dim() = %d, want 384", b.Dim())
	}
}

func TestGeluIsExact(t *testing.T) {
	xs := []float32{-3, -1, -0.5, 0, 0.3, 1, 2.5}
	got := model.MustNewExec(backend(t), model.NewStore(), func(_ *model.Scope, x *Node) *Node {
		return activation.Gelu(x)
	}).MustCall(tensors.FromValue(xs))[0]
	want := make([]float32, len(xs))
	for i, x := range xs {
		want[i] = float32(float64(x) * 0.5 * (1 + math.Erf(float64(x)/math.Sqrt2)))
	}
	assertClose(t, "gelu", flat(t, got), want, 1e-5)
}

func TestGradientStepChangesEveryWeight(t *testing.T) {
	c := tinyConfig()
	c.RelPosBias, c.LayerScale, c.DropPath = RelPosShared, 0.1, 0.1
	m := newViT(t, c)
	store := newStore(t, 6)
	r := rand.New(rand.NewPCG(11, 12))
	imgT, _ := randTensor(r, 2, 16, 16, 3)
	targetT, _ := randTensor(r, 2, 17, 32)
	maskData := make([][]bool, 2)
	for b := range maskData {
		maskData[b] = make([]bool, 16)
		for j := range maskData[b] {
			maskData[b][j] = r.IntN(2) == 0
		}
	}
	step := model.MustNewExec(backend(t), store, func(scope *model.Scope, images, mask, target *Node) *Node {
		g := images.Graph()
		feats := m.Forward(scope, images, core.ForwardOptions{Mask: mask, Training: true})
		loss := ReduceAllMean(Mul(feats.Tokens, target))
		var vars []*model.Variable
		var nodes []*Node
		for v := range scope.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				vars = append(vars, v)
				nodes = append(nodes, v.NodeValue(g))
			}
		}
		grads := Gradient(loss, nodes...)
		for i, v := range vars {
			v.SetNodeValue(Sub(nodes[i], MulScalar(grads[i], 10.0)))
		}
		return loss
	})
	// A forward pass first creates and initialises every variable, so the
	// initial weights can be snapshot before the step runs.
	model.MustNewExec(backend(t), store, func(scope *model.Scope, images, mask *Node) *Node {
		return m.Forward(scope, images, core.ForwardOptions{Mask: mask}).Tokens
	}).MustCall(imgT, tensors.FromValue(maskData))
	before := map[string][]float32{}
	for v := range store.IterVariables() {
		if v.Trainable && v.Name() != model.RNGStateVariableName {
			before[v.Path()] = flat(t, v.MustValue())
		}
	}
	step.MustCall(imgT, tensors.FromValue(maskData), targetT)
	for _, want := range []string{"/mask_token", "/cls_token", "/pos_embed", "/rel_pos_bias/rel_pos_bias_table",
		"/blocks/1/attn/q_bias", "/blocks/1/gamma_2", "/norm/weight"} {
		if _, ok := before[want]; !ok {
			t.Errorf("variable %s not created", want)
		}
	}
	for path, old := range before {
		now := varValue(t, store, path)
		if slices.Equal(old, now) {
			t.Errorf("variable %s did not change after one step", path)
		}
	}
}

func TestWeightDecayAndLayerIDRules(t *testing.T) {
	cases := []struct {
		path    string
		noDecay bool
		layer   int
	}{
		{"/backbone/cls_token", true, 0},
		{"/backbone/mask_token", true, 0},
		{"/backbone/pos_embed", true, 0},
		{"/backbone/patch_embed/weight", false, 0},
		{"/backbone/patch_embed/bias", true, 0},
		{"/backbone/rel_pos_bias/rel_pos_bias_table", true, 13},
		{"/backbone/blocks/0/norm1/weight", true, 1},
		{"/backbone/blocks/0/attn/qkv/weight", false, 1},
		{"/backbone/blocks/0/attn/q_bias", true, 1},
		{"/backbone/blocks/11/attn/rel_pos_bias_table", true, 12},
		{"/backbone/blocks/11/mlp/fc2/weight", false, 12},
		{"/backbone/blocks/3/gamma_1", true, 4},
		{"/backbone/norm/weight", true, 13},
		{"/head/weight", false, 13},
	}
	for _, tc := range cases {
		if got := NoWeightDecay(tc.path); got != tc.noDecay {
			t.Errorf("NoWeightDecay(%q) = %v, want %v", tc.path, got, tc.noDecay)
		}
		if got := LayerID(tc.path, 12); got != tc.layer {
			t.Errorf("LayerID(%q, 12) = %d, want %d", tc.path, got, tc.layer)
		}
	}

	// On a real model, the name rule agrees with "rank < 2 or special name".
	c := tinyConfig()
	c.RelPosBias, c.LayerScale = RelPosPerLayer, 0.1
	m := newViT(t, c)
	store := newStore(t, 7)
	model.MustNewExec(backend(t), store, func(scope *model.Scope, images, mask *Node) *Node {
		return m.Forward(scope, images, core.ForwardOptions{Mask: mask}).Tokens
	}).MustCall(tensors.FromShape(shapesF32(1, 16, 16, 3)), tensors.FromValue([][]bool{make([]bool, 16)}))
	count := 0
	for v := range store.IterVariables() {
		if v.Name() == model.RNGStateVariableName {
			continue
		}
		count++
		special := v.Name() == "cls_token" || v.Name() == "mask_token" || v.Name() == "pos_embed" ||
			v.Name() == "rel_pos_bias_table"
		if want := v.Shape().Rank() < 2 || special; NoWeightDecay(v.Path()) != want {
			t.Errorf("NoWeightDecay(%q) = %v, but rank %d", v.Path(), !want, v.Shape().Rank())
		}
	}
	if count == 0 {
		t.Fatal("no variables created")
	}
}

func TestInitialisation(t *testing.T) {
	c := tinyConfig()
	c.RelPosBias, c.LayerScale = RelPosShared, 0.1
	m := newViT(t, c)
	store := newStore(t, 8)
	model.MustNewExec(backend(t), store, func(scope *model.Scope, images *Node) *Node {
		return m.Forward(scope, images, core.ForwardOptions{}).Tokens
	}).MustCall(tensors.FromShape(shapesF32(1, 16, 16, 3)))
	std := func(v []float32) (mean, sd float64) {
		for _, x := range v {
			mean += float64(x) / float64(len(v))
		}
		for _, x := range v {
			sd += (float64(x) - mean) * (float64(x) - mean) / float64(len(v))
		}
		return mean, math.Sqrt(sd)
	}
	for _, tc := range []struct {
		path string
		std  float64
	}{
		{"/patch_embed/weight", 0.02},
		{"/pos_embed", 0.02},
		{"/blocks/0/attn/qkv/weight", 0.02},
		{"/blocks/0/mlp/fc1/weight", 0.02},
		{"/blocks/0/attn/proj/weight", 0.02 / math.Sqrt(2)}, // BEiT's fix_init_weight: 1/sqrt(2*layer).
		{"/blocks/1/mlp/fc2/weight", 0.02 / math.Sqrt(4)},
	} {
		mean, sd := std(varValue(t, store, tc.path))
		if math.Abs(sd-tc.std) > 0.1*tc.std || math.Abs(mean) > 0.2*tc.std {
			t.Errorf("%s: mean %.4g std %.4g, want 0 and %.4g", tc.path, mean, sd, tc.std)
		}
	}
	for _, tc := range []struct {
		path  string
		value float32
	}{
		{"/blocks/0/norm1/weight", 1}, {"/blocks/0/norm1/bias", 0}, {"/blocks/0/attn/q_bias", 0},
		{"/blocks/1/gamma_2", 0.1}, {"/rel_pos_bias/rel_pos_bias_table", 0}, {"/blocks/1/mlp/fc2/bias", 0},
	} {
		for _, v := range varValue(t, store, tc.path) {
			if v != tc.value {
				t.Fatalf("%s: value %g, want all %g", tc.path, v, tc.value)
			}
		}
	}
}

func TestForwardTwiceSharesWeights(t *testing.T) {
	c := tinyConfig()
	c.DropPath = 0.5 // Inactive without Training.
	m := newViT(t, c)
	r := rand.New(rand.NewPCG(13, 14))
	imgT, _ := randTensor(r, 2, 16, 16, 3)
	outs := model.MustNewExec(backend(t), newStore(t, 9), func(scope *model.Scope, images *Node) []*Node {
		sub := scope.In("backbone")
		a := m.Forward(sub, images, core.ForwardOptions{}).Tokens
		b := m.Forward(sub, images, core.ForwardOptions{}).Tokens
		return []*Node{a, b}
	}).MustCall(imgT)
	if !slices.Equal(flat(t, outs[0]), flat(t, outs[1])) {
		t.Error("two evaluation passes on the same scope differ")
	}
}

// BenchmarkTrainStepTiny4 times a forward+backward pass of ViT-Tiny/4 on
// 32px images (CIFAR-size, 8x8 grid) with BEiT options, batch 32.
func BenchmarkTrainStepTiny4(b *testing.B) {
	c := DefaultConfig()
	c.ImageSize, c.PatchSize = 32, 4
	c.RelPosBias, c.LayerScale, c.DropPath = RelPosShared, 0.1, 0.1
	m, err := NewViT(c)
	if err != nil {
		b.Fatal(err)
	}
	store := model.NewStore()
	exec := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, images *Node) *Node {
		g := images.Graph()
		loss := ReduceAllMean(Square(ReduceMean(m.Forward(scope, images, core.ForwardOptions{Training: true}).Tokens, 1)))
		var vars []*model.Variable
		var nodes []*Node
		for v := range scope.IterVariables() {
			if v.Trainable && v.InUseByGraph(g) {
				vars, nodes = append(vars, v), append(nodes, v.NodeValue(g))
			}
		}
		for i, grad := range Gradient(loss, nodes...) {
			vars[i].SetNodeValue(Sub(nodes[i], MulScalar(grad, 1e-3)))
		}
		return loss
	})
	images := tensors.FromShape(shapesF32(32, 32, 32, 3))
	exec.MustCall(images) // Compile.
	b.ResetTimer()
	for range b.N {
		exec.MustCall(images)
	}
}
