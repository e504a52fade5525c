package mim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/data"
)

// Precomputed tokens. With `target: {type: tokens, from: RUN, precompute:
// V}`, the tokens of V augmented views of every training image (view v of
// image i: the crop and flip drawn from the stream (seed, v, i)) and of the
// evaluation view of every validation image are computed once by the
// frozen tokenizer and kept in RUN's token_cache/ folder, in one file per
// split named by a hash of everything the tokens depend on (the tokenizer's
// checkpoint, the split, its subset and seed, the augmentation, the target
// normalisation, V). Every MIM run with the same data on that tokenizer
// reuses them; epoch e trains on view e mod V, and the model's view is the
// same crop as the cached target's.

const tokenCacheMagic = "PECO-TOKENS-1\n"

// tokenSplit holds the tokens of one split: views x n images x perImage.
type tokenSplit struct {
	views, n, perImage int
	tokens             []int32
	filled             []bool
}

func newTokenSplit(views, n, perImage int) *tokenSplit {
	return &tokenSplit{views: views, n: n, perImage: perImage,
		tokens: make([]int32, views*n*perImage), filled: make([]bool, views*n)}
}

// tokensOf returns the tokens of image i in view v.
func (t *tokenSplit) tokensOf(v, i int) ([]int32, error) {
	if v < 0 || v >= t.views || i < 0 || i >= t.n || !t.filled[v*t.n+i] {
		return nil, fmt.Errorf("no precomputed tokens for image %d, view %d (a bad sample?)", i, v)
	}
	o := (v*t.n + i) * t.perImage
	return t.tokens[o : o+t.perImage], nil
}

// tokenCache holds both splits.
type tokenCache struct {
	train, val *tokenSplit
}

// tokenFileHeader is the JSON header of a cache file.
type tokenFileHeader struct {
	Key      string `json:"key"`
	Views    int    `json:"views"`
	Images   int    `json:"images"`
	PerImage int    `json:"per_image"`
	Filled   []bool `json:"filled"`
}

// cacheKey describes everything a split's tokens depend on.
func cacheKey(src core.TokenSource, cfg Config, seed int64, split string, views int) (string, error) {
	spec, max := cfg.Data.Train, cfg.Data.MaxTrain
	if split == "val" {
		spec, max = cfg.Data.Val, cfg.Data.MaxVal
	}
	b, err := json.Marshal(map[string]any{
		"tokenizer": src.CacheKey(), "split": split, "dataset_type": spec.Type, "dataset": spec.Config,
		"max": max, "seed": seed, "augment": cfg.Data.Augment, "target_normalize": cfg.Data.TargetNormalize, "views": views,
	})
	return string(b), err
}

// precompute loads the cached tokens of both splits, computing and saving
// those that are missing or stale.
func precompute(env *core.Env, cfg Config, src core.TokenSource, l *data.Loaders[example], step *TrainStep, views int) (*tokenCache, error) {
	if src.CacheKey() == "" {
		return nil, fmt.Errorf("the target names no tokenizer run to keep the cache in")
	}
	cacheDir := src.CacheDir()
	if cacheDir == "" {
		cacheDir = env.Path("token_cache") // a tokenizer without a run (a plugin): the MIM run keeps it
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}
	var encode func(*tensors.Tensor) ([]int32, error)
	if step.hostTok != nil {
		encode = func(view *tensors.Tensor) ([]int32, error) {
			n := view.Shape().Dim(0)
			ids, err := step.hostTokens(Batch{B: n, View: tensors.MustCopyFlatData[float32](view)})
			return ids, err
		}
	} else {
		exec, err := model.NewExec(env.Backend, step.Store, func(scope *model.Scope, view *Node) *Node {
			ids, err := src.Compute(scope.In(TokenizerScope), view, step.Net.GridH, step.Net.GridW)
			if err != nil {
				panic(err)
			}
			return ids
		})
		if err != nil {
			return nil, err
		}
		encode = func(view *tensors.Tensor) ([]int32, error) {
			out, err := exec.Exec(view)
			if err != nil {
				return nil, err
			}
			return tensors.MustCopyFlatData[int32](out[0]), nil
		}
	}
	tnorm, _ := data.NewNormalizer(cfg.Data.TargetNormalize)
	c := &tokenCache{}
	for _, split := range []string{"train", "val"} {
		ds, nv := l.TrainSet, views
		view := func(s data.Sample) (*data.Image, error) {
			return targetView(l.Augment.Train(s.Image, data.StreamRNG(env.Seed, data.StreamFixedView, s.Epoch, s.Index)))
		}
		if split == "val" {
			ds, nv = l.ValSet, 1
			view = func(s data.Sample) (*data.Image, error) { return targetView(l.Augment.Eval(s.Image)) }
		}
		key, err := cacheKey(src, cfg, env.Seed, split, nv)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(key))
		path := filepath.Join(cacheDir, hex.EncodeToString(sum[:8])+"-"+split+".tokens")
		n := step.Net.GridH * step.Net.GridW
		ts, err := readTokenFile(path, key, nv, ds.Len(), n)
		if err == nil {
			env.Printf("mim: %s tokens (%d views of %d images) from %s\n", split, nv, ds.Len(), path)
		} else {
			if !os.IsNotExist(err) {
				env.Printf("mim: recomputing %s: %v\n", path, err)
			}
			t0 := time.Now()
			if ts, err = computeTokens(env, encode, ds, cfg, step, view, tnorm, nv, n); err != nil {
				return nil, fmt.Errorf("%s split: %w", split, err)
			}
			if err := writeTokenFile(path, key, ts); err != nil {
				return nil, err
			}
			env.Printf("mim: computed %s tokens (%d views of %d images) in %.1fs, cached in %s\n", split, nv, ds.Len(), time.Since(t0).Seconds(), path)
		}
		if split == "train" {
			c.train = ts
		} else {
			c.val = ts
		}
	}
	return c, nil
}

// targetView is the second view, or the model's view when there is none
// (augment.second_size 0).
func targetView(view, second *data.Image, err error) (*data.Image, error) {
	if second == nil {
		return view, err
	}
	return second, err
}

// computeTokens encodes nv views of every image of ds, in batches of the
// evaluation batch size (the last one padded).
func computeTokens(env *core.Env, encode func(*tensors.Tensor) ([]int32, error), ds data.Dataset, cfg Config, step *TrainStep,
	view func(data.Sample) (*data.Image, error), tnorm data.Normalizer, nv, n int) (*tokenSplit, error) {
	bs := cfg.Data.EvalBatch
	pipe, err := data.NewPipeline(ds, func(s data.Sample, _ *rand.Rand) ([]float32, error) {
		v, err := view(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		return tnorm.Apply(v, nil), nil
	}, data.PipelineConfig{BatchSize: bs, Workers: cfg.Data.Workers, Seed: env.Seed, World: 1})
	if err != nil {
		return nil, err
	}
	defer pipe.Close()
	ts := newTokenSplit(nv, ds.Len(), n)
	per := step.ViewSize * step.ViewSize * step.Channels
	prog := env.StartProgress(nv*pipe.BatchesPerEpoch(), "tokens")
	defer prog.Finish()
	for v := range nv {
		for b, err := range pipe.Epoch(v) {
			if err != nil {
				return nil, err
			}
			pix := make([]float32, bs*per)
			for i, it := range b.Items {
				copy(pix[i*per:], it)
			}
			ids, err := encode(tensors.FromFlatDataAndDimensions(pix, bs, step.ViewSize, step.ViewSize, step.Channels))
			if err != nil {
				return nil, err
			}
			for i, idx := range b.Indices {
				copy(ts.tokens[(v*ts.n+idx)*n:], ids[i*n:(i+1)*n])
				ts.filled[v*ts.n+idx] = true
			}
			prog.Advance(1, len(b.Items), "")
		}
	}
	return ts, nil
}

// writeTokenFile saves a split's tokens atomically.
func writeTokenFile(path, key string, ts *tokenSplit) error {
	hb, err := json.Marshal(tokenFileHeader{Key: key, Views: ts.views, Images: ts.n, PerImage: ts.perImage, Filled: ts.filled})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.WriteString(tokenCacheMagic)
	_ = binary.Write(&buf, binary.LittleEndian, uint64(len(hb)))
	buf.Write(hb)
	_ = binary.Write(&buf, binary.LittleEndian, ts.tokens)
	return ckpt.WriteFileAtomic(path, buf.Bytes())
}

// readTokenFile loads a split's tokens, checking that the file was made for
// key with the expected sizes.
func readTokenFile(path, key string, views, images, perImage int) (*tokenSplit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(tokenCacheMagic)) || len(b) < len(tokenCacheMagic)+8 {
		return nil, fmt.Errorf("not a token cache file")
	}
	b = b[len(tokenCacheMagic):]
	hl := binary.LittleEndian.Uint64(b[:8])
	b = b[8:]
	if uint64(len(b)) < hl {
		return nil, fmt.Errorf("truncated header")
	}
	var h tokenFileHeader
	if err := json.Unmarshal(b[:hl], &h); err != nil {
		return nil, fmt.Errorf("bad header: %w", err)
	}
	if h.Key != key || h.Views != views || h.Images != images || h.PerImage != perImage || len(h.Filled) != views*images {
		return nil, fmt.Errorf("made for other data or another tokenizer")
	}
	ts := newTokenSplit(views, images, perImage)
	data := b[hl:]
	if len(data) != 4*len(ts.tokens) {
		return nil, fmt.Errorf("truncated: %d bytes of tokens, want %d", len(data), 4*len(ts.tokens))
	}
	if err := binary.Read(bytes.NewReader(data), binary.LittleEndian, ts.tokens); err != nil {
		return nil, err
	}
	copy(ts.filled, h.Filled)
	return ts, nil
}
