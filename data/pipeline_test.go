package data

import (
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// item is what the test transform produces: the sample's index and the first
// value of its generator.
type item struct {
	Index int
	Rand  uint64
}

func testTransform(s Sample, r *rand.Rand) (item, error) {
	return item{Index: s.Label, Rand: r.Uint64()}, nil
}

func collect(t *testing.T, p *Pipeline[item], start Position, end int) []Batch[item] {
	t.Helper()
	var out []Batch[item]
	for b, err := range p.Batches(start, end) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func newTestPipeline(t *testing.T, ds Dataset, cfg PipelineConfig) *Pipeline[item] {
	t.Helper()
	p, err := NewPipeline(ds, testTransform, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func sameBatches(a, b []Batch[item]) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Position != b[i].Position || a[i].Resume != b[i].Resume ||
			!slices.Equal(a[i].Items, b[i].Items) || !slices.Equal(a[i].Indices, b[i].Indices) {
			return false
		}
	}
	return true
}

func TestPipelineOrderIndependentOfWorkers(t *testing.T) {
	ds := newMemDataset(103)
	cfg := PipelineConfig{BatchSize: 8, Shuffle: true, Seed: 11, Workers: 1, Prefetch: 2}
	one := collect(t, newTestPipeline(t, ds, cfg), Position{}, 2)
	cfg.Workers, cfg.Prefetch = 4, 4
	four := collect(t, newTestPipeline(t, ds, cfg), Position{}, 2)
	if !sameBatches(one, four) {
		t.Fatal("1 and 4 workers produced different batches")
	}
	if len(one) != 2*13 {
		t.Fatalf("%d batches, want 2 epochs of 13", len(one))
	}
	// Each epoch visits a permutation; the two epochs differ.
	var e0, e1 []int
	for _, b := range one {
		for k, it := range b.Items {
			if it.Index != b.Indices[k] || it.Rand != SampleRNG(11, b.Epoch, it.Index).Uint64() {
				t.Fatalf("item %+v not transformed with SampleRNG(seed, %d, index)", it, b.Epoch)
			}
		}
		if b.Epoch == 0 {
			e0 = append(e0, b.Indices...)
		} else {
			e1 = append(e1, b.Indices...)
		}
	}
	if slices.Equal(e0, e1) {
		t.Error("epochs share an order")
	}
	s := slices.Clone(e0)
	slices.Sort(s)
	if len(slices.Compact(s)) != len(e0) {
		t.Error("an epoch repeats samples")
	}
}

func TestPipelineBatchCounts(t *testing.T) {
	ds := newMemDataset(10)
	tests := []struct {
		name     string
		cfg      PipelineConfig
		batches  int
		lastSize int
	}{
		{"drop last", PipelineConfig{BatchSize: 4, DropLast: true}, 2, 4},
		{"keep last", PipelineConfig{BatchSize: 4}, 3, 2},
		{"shards keep last", PipelineConfig{BatchSize: 4, World: 3, Rank: 2}, 1, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPipeline(t, ds, tc.cfg)
			got := collect(t, p, Position{}, 1)
			if len(got) != tc.batches || p.BatchesPerEpoch() != tc.batches || len(got[len(got)-1].Items) != tc.lastSize {
				t.Errorf("%d batches (%d per epoch), last of %d", len(got), p.BatchesPerEpoch(), len(got[len(got)-1].Items))
			}
			if !tc.cfg.Shuffle && tc.cfg.World == 0 && got[0].Indices[1] != 1 {
				t.Errorf("unshuffled order %v", got[0].Indices)
			}
		})
	}
	if _, err := NewPipeline(ds, testTransform, PipelineConfig{BatchSize: 11, DropLast: true}); err == nil {
		t.Error("empty epoch accepted")
	}
}

func TestPipelineResume(t *testing.T) {
	ds := newMemDataset(50)
	cfg := PipelineConfig{BatchSize: 6, Shuffle: true, DropLast: true, Seed: 3, Workers: 3}
	p := newTestPipeline(t, ds, cfg)
	all := collect(t, p, Position{}, 3) // 8 batches per epoch
	if len(all) != 24 {
		t.Fatalf("%d batches", len(all))
	}
	for _, k := range []int{1, 5, 7, 8, 13, 23} {
		start := all[k-1].Resume
		rest := collect(t, p, start, 3)
		if !sameBatches(rest, all[k:]) {
			t.Errorf("resuming at %+v (after batch %d) differs", start, k-1)
		}
	}
	// Next-style use, crossing an epoch boundary, with EOF at the end.
	if err := p.Start(Position{Epoch: 1, Batch: 6}, 3); err != nil {
		t.Fatal(err)
	}
	for k := 14; k < 24; k++ {
		b, err := p.Next()
		if err != nil || !sameBatches([]Batch[item]{b}, all[k:k+1]) {
			t.Fatalf("Next %d: %+v %v", k, b.Position, err)
		}
	}
	if _, err := p.Next(); err != io.EOF {
		t.Errorf("after the last batch: %v", err)
	}
	if err := p.Start(Position{Batch: 9}, 1); err == nil {
		t.Error("start beyond the epoch accepted")
	}
}

func TestPipelineShardsDisjoint(t *testing.T) {
	ds := newMemDataset(100)
	const world = 3
	seen := map[int]int{}
	for epoch := range 2 {
		clear(seen)
		for rank := range world {
			cfg := PipelineConfig{BatchSize: 5, Shuffle: true, Seed: 5, Rank: rank, World: world, Workers: 2}
			p := newTestPipeline(t, ds, cfg)
			n := 0
			for b, err := range p.Epoch(epoch) {
				if err != nil {
					t.Fatal(err)
				}
				for _, idx := range b.Indices {
					if r, dup := seen[idx]; dup {
						t.Fatalf("epoch %d: index %d on ranks %d and %d", epoch, idx, r, rank)
					}
					seen[idx] = rank
					n++
				}
			}
			if n != 33 || p.ShardLen() != 33 {
				t.Errorf("rank %d saw %d samples", rank, n)
			}
		}
		if len(seen) != 99 {
			t.Errorf("shards cover %d samples", len(seen))
		}
	}
}

func TestPipelineSkipsBadSamples(t *testing.T) {
	ds := newMemDataset(40)
	ds.bad = map[int]bool{3: true, 4: true, 17: true}
	cfg := PipelineConfig{BatchSize: 8, Shuffle: true, Seed: 1, Workers: 3}
	p := newTestPipeline(t, ds, cfg)
	got := collect(t, p, Position{}, 2)
	for _, b := range got {
		if len(b.Items) != 8 {
			t.Fatalf("batch %+v has %d items", b.Position, len(b.Items))
		}
		for _, idx := range b.Indices {
			if ds.bad[idx] {
				t.Fatalf("bad sample %d delivered", idx)
			}
		}
	}
	if p.Skipped() != 6 || p.Stats().Skipped != 6 {
		t.Errorf("Skipped = %d, want 6 (3 bad samples, 2 epochs)", p.Skipped())
	}
	recs := p.SkippedSamples()
	if len(recs) != 6 || !strings.HasPrefix(recs[0].Path, "img/") {
		t.Errorf("records %+v", recs)
	}
	// Deterministic despite the replacements.
	cfg.Workers = 1
	if again := collect(t, newTestPipeline(t, ds, cfg), Position{}, 2); !sameBatches(got, again) {
		t.Error("replacements depend on the number of workers")
	}
}

func TestPipelineFatalError(t *testing.T) {
	ds := newMemDataset(40)
	ds.fatal = 21
	p := newTestPipeline(t, ds, PipelineConfig{BatchSize: 4, Workers: 2})
	var err error
	n := 0
	for _, e := range p.Epoch(0) {
		if e != nil {
			err = e
			break
		}
		n++
	}
	if err == nil || !strings.Contains(err.Error(), "img/00021.jpg") || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("error %v", err)
	}
	if n != 5 {
		t.Errorf("%d batches before the error, want 5", n)
	}
	// Next-style: the error sticks.
	if err := p.Start(Position{}, 1); err != nil {
		t.Fatal(err)
	}
	var first error
	for range 10 {
		if _, e := p.Next(); e != nil {
			first = e
			break
		}
	}
	if _, e := p.Next(); e == nil || e.Error() != first.Error() {
		t.Errorf("error not sticky: %v then %v", first, e)
	}
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > want {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines, want <= %d\n%s", n, want, buf[:runtime.Stack(buf, true)])
	}
}

func TestPipelineCloseNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	ds := newMemDataset(200)
	ds.delay = time.Millisecond
	p, err := NewPipeline(ds, testTransform, PipelineConfig{BatchSize: 4, Workers: 6, Prefetch: 4})
	if err != nil {
		t.Fatal(err)
	}
	// Break out of an iterator early.
	for b, err := range p.Epoch(0) {
		if err != nil || b.Batch == 2 {
			break
		}
	}
	waitGoroutines(t, before)
	// Close while a stream is running, with the prefetch queue full.
	if err := p.Start(Position{}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Next(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	p.Close()
	waitGoroutines(t, before)
	if _, err := p.Next(); !errors.Is(err, ErrPipelineClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if err := p.Start(Position{}, 1); !errors.Is(err, ErrPipelineClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	// Close from another goroutine unblocks a waiting Next.
	slow := newMemDataset(20)
	slow.delay = 200 * time.Millisecond
	q, _ := NewPipeline(slow, testTransform, PipelineConfig{BatchSize: 20, Workers: 1})
	q.Start(Position{}, 1)
	go func() { time.Sleep(20 * time.Millisecond); q.Close() }()
	if _, err := q.Next(); !errors.Is(err, ErrPipelineClosed) {
		t.Errorf("blocked Next after Close: %v", err)
	}
	waitGoroutines(t, before)
}

func TestPipelineStats(t *testing.T) {
	ds := newMemDataset(64)
	p := newTestPipeline(t, ds, PipelineConfig{BatchSize: 8, Workers: 2})
	collect(t, p, Position{}, 1)
	st := p.Stats()
	if st.Samples != 64 || st.Batches != 8 || st.Workers != 2 || st.Busy <= 0 || st.SamplesPerSecond() <= 0 || st.Elapsed <= 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestPipelineEndToEnd runs the real transforms through the pipeline with a
// cache: augmentation and masking are reproducible from the seed.
func TestPipelineEndToEnd(t *testing.T) {
	type views struct {
		X, Y []float32
		Mask []bool
	}
	ds := newMemDataset(24)
	ds.h, ds.w, ds.textured = 40, 50, true
	cached := NewCachedDataset(ds, ResizeSpec{Shorter: 32}, 0)
	acfg := DefaultAugmentConfig()
	acfg.Size, acfg.SecondSize = 32, 16
	acfg.ColorJitter = DefaultColorJitter()
	aug, err := acfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	mcfg := DefaultMaskConfig()
	mcfg.MinPatches = 2
	masker, err := mcfg.New(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	tf := func(s Sample, r *rand.Rand) (views, error) {
		mr := SplitRNG(r)
		v, w, err := aug.Train(s.Image, r)
		if err != nil {
			return views{}, err
		}
		n := aug.Normalizer()
		return views{X: n.Apply(v, nil), Y: n.Apply(w, nil), Mask: masker.Mask(mr)}, nil
	}
	run := func(workers int) [][]views {
		p, err := NewPipeline(cached, tf, PipelineConfig{BatchSize: 6, Shuffle: true, Seed: 99, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		var out [][]views
		for b, err := range p.Batches(Position{}, 2) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b.Items)
		}
		return out
	}
	a, b := run(1), run(3)
	if len(a) != 8 {
		t.Fatalf("%d batches", len(a))
	}
	for i := range a {
		for k := range a[i] {
			x, y := a[i][k], b[i][k]
			if !slices.Equal(x.X, y.X) || !slices.Equal(x.Y, y.Y) || !slices.Equal(x.Mask, y.Mask) || countTrue(x.Mask) != 6 {
				t.Fatalf("batch %d item %d differs between runs", i, k)
			}
		}
	}
	if ds.visits.Load() != 24 {
		t.Errorf("decoded %d times with the cache, want 24", ds.visits.Load())
	}
}

func TestPipelineBatchAt(t *testing.T) {
	ds := newMemDataset(50)
	cfg := PipelineConfig{BatchSize: 6, Shuffle: true, DropLast: true, Seed: 3, Workers: 2}
	p := newTestPipeline(t, ds, cfg)
	all := collect(t, p, Position{}, 3) // 8 batches per epoch
	at := func(k int) {
		t.Helper()
		b, err := p.BatchAt(all[k].Position, 3)
		if err != nil || !sameBatches([]Batch[item]{b}, all[k:k+1]) {
			t.Fatalf("BatchAt(%+v): %+v %v", all[k].Position, b.Position, err)
		}
	}
	// A loop's positions: consecutive within an epoch, then {epoch+1, 0}
	// after the evaluation stopped the stream, then a jump (a resume).
	for k := 0; k < 8; k++ {
		at(k)
	}
	p.Stop()
	for k := 8; k < 12; k++ {
		at(k)
	}
	at(20)
	at(21)
	// {epoch, perEpoch} means the first batch of the next epoch.
	b, err := p.BatchAt(Position{Epoch: 0, Batch: 8}, 3)
	if err != nil || b.Position != all[8].Position {
		t.Fatalf("BatchAt(end of epoch 0) = %+v, %v", b.Position, err)
	}
	if _, err := p.BatchAt(Position{Epoch: 3}, 3); err == nil {
		t.Error("a batch past the last epoch was returned")
	}
}
