package tokenizers

import (
	"math"
	"testing"

	"github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/backbones/conv"
	"github.com/peco-dev/peco/core"
)

func mat(rows int, v ...float32) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(v, rows, len(v)/rows)
}

func newQuantizer(k, d int, ema bool, restart int) *Quantizer {
	c := DefaultVQVAE().QuantizerConfig
	c.CodebookSize, c.CodeDim, c.EMA, c.RestartAfter = k, d, ema, restart
	return &Quantizer{Config: c}
}

// setState writes codebook and state into store under /q.
func setState(t *testing.T, store *model.Store, cb []float32, k, d int, unused []float32) {
	t.Helper()
	m := &VQVAE{Config: VQVAEConfig{QuantizerConfig: QuantizerConfig{CodebookSize: k, CodeDim: d}}}
	if err := m.SetCodebook(store.Scope("/"), cb); err != nil {
		t.Fatal(err)
	}
	if unused != nil {
		store.GetVariable("/quantizer/unused").MustSetValue(tensors.FromFlatDataAndDimensions(unused, k))
	}
}

func TestAssignNearest(t *testing.T) {
	out := MustExecOnce(gobackend.GetBackend(), Assign,
		mat(3, 0, 0, 1, 1, 5, 5), mat(3, 4, 4, 0.9, 1.2, -0.1, 0.1))
	got := tensors.MustCopyFlatData[int32](out)
	want := []int32{2, 1, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ids %v, want %v", got, want)
		}
	}
}

// TestStraightThroughGradient: the encoder output z receives exactly the
// gradient the decoder sends to the quantised vectors.
func TestStraightThroughGradient(t *testing.T) {
	q := newQuantizer(3, 2, false, 0)
	store := model.NewStore()
	setState(t, store, []float32{0.5, 0.5, 1, 1, -1, 2}, 3, 2, nil)
	outs := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, z *Node) []*Node {
		r := q.Quantize(scope.In("quantizer"), z, false)
		c := Const(z.Graph(), [][]float32{{1, 2}, {3, -1}})
		loss := ReduceAllSum(Square(Mul(r.ST, c))) // a stand-in decoder + loss
		grads := Gradient(loss, z, r.ST)
		return []*Node{grads[0], grads[1], r.ST, r.ZQ}
	}).MustExec(mat(2, 0.2, 0.1, 0.8, 1.3))
	gz := tensors.MustCopyFlatData[float32](outs[0])
	gst := tensors.MustCopyFlatData[float32](outs[1])
	st := tensors.MustCopyFlatData[float32](outs[2])
	zq := tensors.MustCopyFlatData[float32](outs[3])
	for i := range gz {
		if gz[i] != gst[i] || gz[i] == 0 {
			t.Errorf("d/dz %v != d/dz_q %v", gz, gst)
			break
		}
		if st[i] != zq[i] {
			t.Errorf("forward value %v, want the codewords %v", st, zq)
			break
		}
	}
}

// TestEMAUpdate checks the EMA codebook update on a hand-made batch.
func TestEMAUpdate(t *testing.T) {
	const k, d, decay, eps = 3, 2, 0.99, 1e-5
	q := newQuantizer(k, d, true, 0)
	store := model.NewStore()
	cb := []float32{0, 0, 10, 10, -10, 10}
	setState(t, store, cb, k, d, nil)
	// Batch: two vectors near code 0, one near code 1, none near code 2.
	z := []float32{1, 0, 0, 1, 9, 11}
	model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, z *Node) *Node {
		return q.Quantize(scope.In("quantizer"), z, true).ZQ
	}).MustExec(mat(3, z...))
	counts := []float64{2, 1, 0}
	sums := [][]float64{{1, 1}, {9, 11}, {0, 0}}
	var cnt [k]float64
	var total float64
	for i := range k {
		cnt[i] = decay*1 + (1-decay)*counts[i]
		total += cnt[i]
	}
	got := tensors.MustCopyFlatData[float32](store.GetVariable("/quantizer/codebook").MustValue())
	for i := range k {
		smoothed := (cnt[i] + eps) / (total + k*eps) * total
		for j := range d {
			sum := decay*float64(cb[i*d+j]) + (1-decay)*sums[i][j]
			want := sum / smoothed
			if math.Abs(float64(got[i*d+j])-want) > 1e-4 {
				t.Errorf("codebook[%d][%d] = %v, want %v", i, j, got[i*d+j], want)
			}
		}
	}
	gotCnt := tensors.MustCopyFlatData[float32](store.GetVariable("/quantizer/ema_count").MustValue())
	for i := range k {
		if math.Abs(float64(gotCnt[i])-cnt[i]) > 1e-6 {
			t.Errorf("ema_count[%d] = %v, want %v", i, gotCnt[i], cnt[i])
		}
	}
	if store.GetVariable("/quantizer/codebook").Trainable {
		t.Error("an EMA codebook must not be trainable")
	}
}

// TestDeadCodeRestart: a code unused for restart_after steps moves onto a
// vector of the current batch; usage counters reset and count up.
func TestDeadCodeRestart(t *testing.T) {
	const k, d = 3, 2
	q := newQuantizer(k, d, false, 5)
	store := model.NewStore()
	setState(t, store, []float32{0, 0, 1, 1, 100, 100}, k, d, []float32{0, 2, 5})
	z := []float32{0.1, 0, 1, 0.9, 7, 7, 7, 7}
	outs := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, z *Node) *Node {
		return q.Quantize(scope.In("quantizer"), z, true).IDs
	}).MustExec(mat(4, z...))
	cb := tensors.MustCopyFlatData[float32](store.GetVariable("/quantizer/codebook").MustValue())
	row := cb[2*d : 3*d]
	found := false
	for i := range 4 {
		if row[0] == z[i*d] && row[1] == z[i*d+1] {
			found = true
		}
	}
	if !found {
		t.Errorf("dead code 2 is %v, want one of the batch vectors %v", row, z)
	}
	if cb[0] != 0 || cb[2] != 1 {
		t.Errorf("live codes changed: %v", cb)
	}
	unused := tensors.MustCopyFlatData[float32](store.GetVariable("/quantizer/unused").MustValue())
	ids := tensors.MustCopyFlatData[int32](outs[0])
	for c := range k {
		usedNow := false
		for _, id := range ids {
			usedNow = usedNow || int(id) == c
		}
		want := map[int]float32{0: 1, 1: 3, 2: 0}[c]
		if usedNow || c == 2 {
			want = 0
		}
		if unused[c] != want {
			t.Errorf("unused[%d] = %v, want %v (ids %v)", c, unused[c], want, ids)
		}
	}
}

func TestGumbelAndKLSchedules(t *testing.T) {
	c := DefaultDVAE()
	c.TempAnnealFrac, c.KLWarmupFrac = 0.5, 0.1
	const total = 1000
	for _, tc := range []struct {
		sched string
		step  int
		want  float64
	}{
		{"cosine", 0, 1},
		{"cosine", 250, 1.0/16 + (1-1.0/16)*0.5},
		{"cosine", 500, 1.0 / 16},
		{"cosine", 900, 1.0 / 16},
		{"exponential", 0, 1},
		{"exponential", 250, 0.25},
		{"exponential", 500, 1.0 / 16},
		{"exponential", 1000, 1.0 / 16},
	} {
		c.TempSchedule = tc.sched
		if got := c.Temperature(tc.step, total); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s temperature at %d: %v, want %v", tc.sched, tc.step, got, tc.want)
		}
	}
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 0}, {50, 0.5}, {100, 1}, {700, 1}} {
		if got := c.KLRamp(tc.step, total); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("kl ramp at %d: %v, want %v", tc.step, got, tc.want)
		}
	}
}

// TestTokenizerShapes runs both tokenizers forward, Encode and Decode.
func TestTokenizerShapes(t *testing.T) {
	enc := conv.Config{Width: 8, Mults: []int{1, 2}, Blocks: 1, Groups: 4}
	vq := DefaultVQVAE()
	vq.Encoder, vq.Decoder, vq.CodebookSize, vq.CodeDim = enc, enc, 16, 4
	vqm, _ := NewVQVAE(vq)
	dv := DefaultDVAE()
	dv.Encoder, dv.Decoder, dv.CodebookSize, dv.CodeDim = enc, enc, 16, 4
	for _, name := range []string{"vqvae", "dvae"} {
		tok := map[string]core.TrainableTokenizer{"vqvae": vqm, "dvae": &DVAE{Config: dv}}[name]
		t.Log(name)
		store := model.NewStore()
		if _, err := tok.Prepare(store.Scope("/tokenizer"), 0, 10); err != nil {
			t.Fatal(err)
		}
		pix := make([]float32, 2*16*16*3)
		for i := range pix {
			pix[i] = float32(math.Sin(float64(i) * 0.1))
		}
		outs := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, x *Node) []*Node {
			o := tok.Forward(scope.In("tokenizer"), x, true)
			return []*Node{o.Reconstruction, o.Tokens}
		}).MustExec(tensors.FromFlatDataAndDimensions(pix, 2, 16, 16, 3))
		if d := outs[0].Shape().Dimensions; d[0] != 2 || d[1] != 16 || d[3] != 3 {
			t.Errorf("%s: reconstruction %v", name, d)
		}
		if d := outs[1].Shape().Dimensions; d[1] != 4 || d[2] != 4 {
			t.Errorf("%s: tokens %v", name, d)
		}
		dec := model.MustNewExec(gobackend.GetBackend(), store, func(scope *model.Scope, x *Node) []*Node {
			ids := tok.Encode(scope.In("tokenizer"), x)
			return []*Node{ids, tok.Decode(store.Scope("/tokenizer"), ids)}
		}).MustExec(tensors.FromFlatDataAndDimensions(pix, 2, 16, 16, 3))
		if d := dec[1].Shape().Dimensions; d[1] != 16 || d[2] != 16 || d[3] != 3 {
			t.Errorf("%s: decoded %v", name, d)
		}
	}
}
