// Package probe holds the codebook-semantics probes of PeCo (paper Table 4
// and Fig. 3) as the task "codebook_probe", run on a trained tokenizer:
//
//	(a) a linear probe on the token map: softmax regression on each image's
//	    bag of codes (the normalised histogram of its tokens) -> class;
//	(b) a fixed classifier (a run of the classification task) applied to the
//	    original images and to the tokenizer's reconstructions: the accuracy
//	    drop says how much class information survives tokenization;
//	(c) an image grid of the patches that map to the same codeword, for the
//	    most frequent codes.
package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/registry"
	"github.com/peco-dev/peco/tasks/classify"
	"github.com/peco-dev/peco/tasks/tokenizer"
)

// DataConfig selects the images probed.
type DataConfig struct {
	Train     registry.Spec[data.Dataset] `mapstructure:"train" doc:"split the bag-of-codes probe is trained on"`
	Val       registry.Spec[data.Dataset] `mapstructure:"val" doc:"split every probe is evaluated on"`
	MaxTrain  int                         `mapstructure:"max_train" doc:"seeded subset of the training split (0 = all)"`
	MaxVal    int                         `mapstructure:"max_val" doc:"seeded subset of the evaluation split (0 = all)"`
	Size      int                         `mapstructure:"size" doc:"side of the (resized, center-cropped) images fed to the tokenizer; 0 = the tokenizer run's size"`
	BatchSize int                         `mapstructure:"batch_size" doc:"images per tokenizer/classifier call"`
	Workers   int                         `mapstructure:"workers" doc:"decoding goroutines (0 = number of CPUs)"`
}

// Source names an earlier run whose trained part a probe uses.
type Source struct {
	From string `mapstructure:"from" doc:"the run: runs/<name> (its newest run), a run directory or a .ckpt file"`
}

// LinearConfig configures the bag-of-codes softmax regression.
type LinearConfig struct {
	Epochs      int     `mapstructure:"epochs" doc:"passes of minibatch Adam over the training bags of codes"`
	LR          float64 `mapstructure:"lr" doc:"learning rate of the softmax regression (Adam)"`
	WeightDecay float64 `mapstructure:"weight_decay" doc:"L2 penalty on the weights"`
}

// Config configures the codebook probes.
type Config struct {
	// Tokenizer is the tokenizer run probed.
	Tokenizer  Source       `mapstructure:"tokenizer" doc:"the tokenizer probed: {from: RUN} (a tokenizer run: runs/<name>, a run directory or a .ckpt)"`
	Classifier Source       `mapstructure:"classifier" doc:"the fixed classifier of probe (b): {from: RUN} (a classification run); from empty skips (b)"`
	Data       DataConfig   `mapstructure:"data" doc:"images probed"`
	Linear     LinearConfig `mapstructure:"linear" doc:"the bag-of-codes linear probe (a)"`
	GridCodes  int          `mapstructure:"grid_codes" doc:"probe (c): rows of the patch grid, the most frequent codes"`
	GridPerRow int          `mapstructure:"grid_per_row" doc:"probe (c): patches shown per code"`
}

// Validate checks the ranges.
func (c *Config) Validate() error {
	switch {
	case c.Tokenizer.From == "":
		return errors.New("tokenizer.from: the tokenizer run to probe must be set")
	case !c.Data.Train.IsSet() || !c.Data.Val.IsSet():
		return errors.New("data.train and data.val must be set")
	case c.Data.BatchSize <= 0 || c.Data.Size < 0 || c.Data.MaxTrain < 0 || c.Data.MaxVal < 0:
		return errors.New("data.batch_size must be > 0; size, max_train and max_val >= 0")
	case c.Linear.Epochs <= 0 || c.Linear.LR <= 0 || c.Linear.WeightDecay < 0:
		return errors.New("linear: epochs and lr must be > 0, weight_decay >= 0")
	case c.GridCodes < 0 || c.GridPerRow < 0:
		return errors.New("grid_codes and grid_per_row must be >= 0")
	}
	return nil
}

// DefaultConfig returns 50 epochs of the linear probe, batches of 100, a
// 16 x 16 patch grid.
func DefaultConfig() Config {
	return Config{
		Data:       DataConfig{BatchSize: 100},
		Linear:     LinearConfig{Epochs: 50, LR: 0.01, WeightDecay: 1e-4},
		GridCodes:  16,
		GridPerRow: 16,
	}
}

func init() {
	registry.Register(core.Tasks, "codebook_probe",
		"codebook semantics (PeCo Table 4 / Fig. 3): bag-of-codes linear probe, classifier on reconstructions, patches per code",
		DefaultConfig, func(c Config) (core.Task, error) { return &Task{cfg: c}, nil })
}

// Task is the codebook-probe task.
type Task struct{ cfg Config }

// coded is the tokenizer's view of one split.
type coded struct {
	labels []int32
	tokens []int32   // n x h x w
	pix    []float32 // originals, n x size x size x c, in [-1, 1]
	rec    []float32 // reconstructions, same layout
	h, w   int
}

// Run implements core.Task.
func (t *Task) Run(ctx context.Context, env *core.Env) error {
	cfg := t.cfg
	tok, err := tokenizer.LoadTrained(cfg.Tokenizer.From)
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	size := cfg.Data.Size
	if size == 0 {
		size = tok.ImageSize
	}
	if size <= 0 {
		return errors.New("data.size: the tokenizer run records no image size; set data.size")
	}
	vocab := tok.Tokenizer.VocabSize()
	exec, err := model.NewExec(env.Backend, tok.Store, func(scope *model.Scope, images *Node) []*Node {
		ids := ConvertDType(tok.Tokenizer.Encode(scope.In(tokenizer.Scope), images), dtypes.Int32)
		return []*Node{ids, tok.Tokenizer.Decode(scope.Store().Scope("/"+tokenizer.Scope), ids)}
	})
	if err != nil {
		return err
	}
	encode := func(key string, spec registry.Spec[data.Dataset], max int, seed int64) (*coded, int, error) {
		ds, err := data.OpenSplit(spec, key, max, seed, data.CacheConfig{})
		if err != nil {
			return nil, 0, err
		}
		c, err := t.encodeSplit(ctx, env, exec, ds, size, key)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", key, err)
		}
		return c, len(ds.Classes()), nil
	}
	env.Printf("codebook probes of %s (%d codes) on %dx%d images\n", tok.Checkpoint, vocab, size, size)
	train, numClasses, err := encode("data.train", cfg.Data.Train, cfg.Data.MaxTrain, env.Seed)
	if err != nil {
		return err
	}
	val, _, err := encode("data.val", cfg.Data.Val, cfg.Data.MaxVal, env.Seed+1)
	if err != nil {
		return err
	}
	summary := map[string]any{"tokenizer": tok.Checkpoint, "vocab": vocab, "grid": fmt.Sprintf("%dx%d", val.h, val.w),
		"train_images": len(train.labels), "val_images": len(val.labels)}

	// Codebook usage on the evaluation split.
	used, perplexity := usage(val.tokens, vocab)
	summary["codes_used"], summary["perplexity"] = used, perplexity
	summary["recon_psnr"] = psnr(val.pix, val.rec)

	// (a) Linear probe on the bag of codes.
	acc, err := bagOfCodesProbe(train, val, vocab, numClasses, cfg.Linear, env.Seed)
	if err != nil {
		return err
	}
	summary["bag_of_codes_top1"] = acc
	env.Printf("(a) bag-of-codes linear probe: top-1 %.2f%% (chance %.2f%%)\n", 100*acc, 100/float64(numClasses))

	// (b) A fixed classifier on originals and reconstructions.
	if cfg.Classifier.From != "" {
		orig, rec, err := classifierProbe(env, cfg.Classifier.From, val, size, numClasses, cfg.Data.BatchSize)
		if err != nil {
			return fmt.Errorf("classifier: %w", err)
		}
		summary["classifier_top1_original"], summary["classifier_top1_reconstruction"] = orig, rec
		summary["classifier_top1_drop"] = orig - rec
		env.Printf("(b) classifier top-1: originals %.2f%%, reconstructions %.2f%% (drop %.2f points)\n", 100*orig, 100*rec, 100*(orig-rec))
	}

	// (c) Patches per codeword.
	if cfg.GridCodes > 0 && cfg.GridPerRow > 0 {
		path := env.Path(core.ImagesDir, "patches_per_code.png")
		if err := writeCodeGrid(path, val, size, cfg.GridCodes, cfg.GridPerRow, vocab); err != nil {
			return err
		}
		summary["patch_grid"] = path
		env.Printf("(c) patches of the %d most frequent codes: %s\n", cfg.GridCodes, path)
	}
	rec := map[string]any{"phase": "probe"}
	for k, v := range summary {
		rec[k] = v
	}
	if err := env.Log(rec); err != nil {
		return err
	}
	return env.Record.SetSummary(summary)
}

// encodeSplit decodes, center-crops and tokenizes every image of ds.
// key names the split (data.train) in the report of its skipped inputs.
func (t *Task) encodeSplit(ctx context.Context, env *core.Env, exec *model.Exec, ds data.Dataset, size int, key string) (*coded, error) {
	cfg := t.cfg
	norm, _ := data.NewNormalizer(core.TokenizerNorm)
	crop := data.CenterCrop{Size: size, CropPct: 1, Interpolation: "bilinear"}
	type item struct {
		pix   []float32
		label int32
		c     int
	}
	pipe, err := data.NewPipeline(ds, func(s data.Sample, _ *rand.Rand) (item, error) {
		im, err := crop.Apply(s.Image)
		if err != nil {
			return item{}, fmt.Errorf("%s: %w", s.Path, err)
		}
		return item{pix: norm.Apply(im, nil), label: int32(s.Label), c: im.C}, nil
	}, data.PipelineConfig{BatchSize: cfg.Data.BatchSize, Workers: cfg.Data.Workers, World: 1})
	if err != nil {
		return nil, err
	}
	defer pipe.Close()
	out := &coded{}
	prog := env.StartProgress(pipe.BatchesPerEpoch(), "tokenize")
	defer prog.Finish()
	for b, err := range pipe.Epoch(0) {
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		items := b.Items
		ch := items[0].c
		per := size * size * ch
		pix := make([]float32, cfg.Data.BatchSize*per) // the last batch is padded: one compiled graph
		for i, it := range items {
			copy(pix[i*per:], it.pix)
		}
		outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(pix, cfg.Data.BatchSize, size, size, ch))
		if err != nil {
			return nil, fmt.Errorf("tokenizing: %w", err)
		}
		d := outs[0].Shape().Dimensions
		out.h, out.w = d[1], d[2]
		ids := tensors.MustCopyFlatData[int32](outs[0])
		rec := tensors.MustCopyFlatData[float32](outs[1])
		n := len(items)
		out.tokens = append(out.tokens, ids[:n*out.h*out.w]...)
		out.rec = append(out.rec, rec[:n*per]...)
		out.pix = append(out.pix, pix[:n*per]...)
		for _, it := range items {
			out.labels = append(out.labels, it.label)
		}
		prog.Advance(1, n, "")
	}
	if len(out.labels) == 0 {
		return nil, errors.New("no images")
	}
	if err := env.ReportSkipped(data.SkipReport(key, ds, pipe.SkippedSamples())); err != nil {
		return nil, err
	}
	return out, nil
}

// usage returns the number of distinct codes and the perplexity of the code
// histogram, exp(entropy).
func usage(tokens []int32, vocab int) (int, float64) {
	hist := make([]int, vocab)
	for _, t := range tokens {
		hist[t]++
	}
	used := 0
	var ent float64
	for _, c := range hist {
		if c > 0 {
			used++
			p := float64(c) / float64(len(tokens))
			ent -= p * math.Log(p)
		}
	}
	return used, math.Exp(ent)
}

// psnr of reconstructions against originals, both in [-1, 1], on [0, 1] pixels.
func psnr(a, b []float32) float64 {
	var se float64
	for i := range a {
		x := (math.Max(-1, math.Min(1, float64(b[i]))) - float64(a[i])) / 2
		se += x * x
	}
	mse := se / float64(len(a))
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(1/mse)
}

// bagOfCodes maps each image's token map to its normalised code histogram.
func bagOfCodes(c *coded, vocab int) [][]float64 {
	per := c.h * c.w
	out := make([][]float64, len(c.labels))
	for i := range out {
		f := make([]float64, vocab)
		for _, t := range c.tokens[i*per : (i+1)*per] {
			f[t] += 1 / float64(per)
		}
		out[i] = f
	}
	return out
}

// bagOfCodesProbe trains softmax regression on the training split's bags of
// codes (standardised per feature with training statistics, minibatch Adam)
// and returns its top-1 accuracy on the evaluation split.
func bagOfCodesProbe(train, val *coded, vocab, classes int, cfg LinearConfig, seed int64) (float64, error) {
	xtr, xva := bagOfCodes(train, vocab), bagOfCodes(val, vocab)
	mean, std := make([]float64, vocab), make([]float64, vocab)
	for _, x := range xtr {
		for j, v := range x {
			mean[j] += v / float64(len(xtr))
		}
	}
	for _, x := range xtr {
		for j, v := range x {
			std[j] += (v - mean[j]) * (v - mean[j]) / float64(len(xtr))
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j]) + 1e-6
	}
	standardize := func(xs [][]float64) {
		for _, x := range xs {
			for j := range x {
				x[j] = (x[j] - mean[j]) / std[j]
			}
		}
	}
	standardize(xtr)
	standardize(xva)
	m := NewSoftmaxRegression(vocab, classes)
	m.Fit(xtr, train.labels, cfg.Epochs, cfg.LR, cfg.WeightDecay, seed)
	return m.Accuracy(xva, val.labels), nil
}

// classifierProbe classifies originals and reconstructions with the model of
// a classification run, returning both top-1 accuracies.
func classifierProbe(env *core.Env, ref string, val *coded, size, numClasses, batch int) (orig, rec float64, err error) {
	clf, err := classify.LoadTrained(ref)
	if err != nil {
		return 0, 0, err
	}
	if clf.NumClasses != numClasses {
		return 0, 0, fmt.Errorf("the classifier has %d classes, the probed data %d", clf.NumClasses, numClasses)
	}
	if clf.ImageSize != size {
		return 0, 0, fmt.Errorf("the classifier takes %dpx images, the probe feeds %dpx (set data.size)", clf.ImageSize, size)
	}
	ch := len(val.pix) / (len(val.labels) * size * size)
	score := func(pix []float32) (float64, error) {
		var hits int
		per := size * size * ch
		for start := 0; start < len(val.labels); start += batch {
			n := min(batch, len(val.labels)-start)
			buf := make([]float32, batch*per)
			copy(buf, pix[start*per:(start+n)*per])
			logits, err := clf.Logits(env.Backend, buf, batch, ch, core.TokenizerNorm)
			if err != nil {
				return 0, err
			}
			for i := 0; i < n; i++ {
				if classify.Rank(logits[i*numClasses:(i+1)*numClasses], int(val.labels[start+i])) == 0 {
					hits++
				}
			}
		}
		return float64(hits) / float64(len(val.labels)), nil
	}
	if orig, err = score(val.pix); err != nil {
		return 0, 0, err
	}
	clipped := make([]float32, len(val.rec))
	for i, v := range val.rec {
		clipped[i] = float32(math.Max(-1, math.Min(1, float64(v))))
	}
	rec, err = score(clipped)
	return orig, rec, err
}

// frequentCodes returns the k most frequent codes, most frequent first.
func frequentCodes(tokens []int32, vocab, k int) []int {
	hist := make([]int, vocab)
	for _, t := range tokens {
		hist[t]++
	}
	codes := make([]int, vocab)
	for i := range codes {
		codes[i] = i
	}
	sort.SliceStable(codes, func(a, b int) bool { return hist[codes[a]] > hist[codes[b]] })
	if k > vocab {
		k = vocab
	}
	var out []int
	for _, c := range codes[:k] {
		if hist[c] > 0 {
			out = append(out, c)
		}
	}
	return out
}
