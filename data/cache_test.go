package data

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheComputeOnce(t *testing.T) {
	c := NewImageCache(1 << 20)
	var loads atomic.Int32
	key := CacheKey{Path: "a.jpg", Size: ResizeSpec{Shorter: 8}}
	var wg sync.WaitGroup
	results := make([]*Image, 8)
	for g := range 8 {
		wg.Go(func() {
			im, err := c.Get(key, func() (*Image, error) {
				loads.Add(1)
				time.Sleep(20 * time.Millisecond)
				return NewImage(4, 4, 3), nil
			})
			if err != nil {
				t.Error(err)
			}
			results[g] = im
		})
	}
	wg.Wait()
	if loads.Load() != 1 {
		t.Errorf("loaded %d times", loads.Load())
	}
	for _, im := range results {
		if im != results[0] {
			t.Error("goroutines got different values")
		}
	}
	st := c.Stats()
	if st.Misses != 1 || st.Hits != 7 || st.Entries != 1 || st.Bytes != imageBytes(results[0]) {
		t.Errorf("stats %+v", st)
	}
	// Another size of the same path is another entry.
	if _, err := c.Get(CacheKey{Path: "a.jpg", Size: ResizeSpec{Shorter: 16}}, func() (*Image, error) { return NewImage(1, 1, 1), nil }); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Entries != 2 {
		t.Errorf("entries %d", c.Stats().Entries)
	}
}

func TestCacheBudgetAndErrors(t *testing.T) {
	c := NewImageCache(300)
	load := func() (*Image, error) { return NewImage(10, 10, 1), nil } // 164 bytes
	for i := range 3 {
		if _, err := c.Get(CacheKey{Index: i}, load); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	if st.Entries != 1 || st.Rejected != 2 || st.Bytes > 300 {
		t.Errorf("stats %+v", st)
	}
	boom := errors.New("boom")
	calls := 0
	fail := func() (*Image, error) { calls++; return nil, boom }
	for range 2 {
		if _, err := c.Get(CacheKey{Path: "bad"}, fail); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
	}
	if calls != 2 {
		t.Errorf("errors cached: %d loads", calls)
	}
	func() {
		defer func() { _ = recover() }()
		c.Get(CacheKey{Path: "panic"}, func() (*Image, error) { panic("x") })
	}()
	if _, err := c.Get(CacheKey{Path: "panic"}, load); err != nil {
		t.Errorf("key stuck after a panicking loader: %v", err)
	}
}

// memDataset is a synthetic dataset: sample i is an 8x12 image filled with
// i%256, label i; indices in bad fail with a *BadSampleError, fatal with a
// plain error.
type memDataset struct {
	n     int
	bad   map[int]bool
	fatal int
	delay time.Duration
	h, w  int
	dense bool
	// textured draws texture(h, w, 3, i) instead of a flat image.
	textured bool
	visits   atomic.Int64
}

func newMemDataset(n int) *memDataset { return &memDataset{n: n, fatal: -1, h: 8, w: 12} }

func (d *memDataset) Len() int          { return d.n }
func (d *memDataset) Classes() []string { return []string{"x"} }
func (d *memDataset) Sample(i int) (Sample, error) {
	d.visits.Add(1)
	if d.delay > 0 {
		time.Sleep(d.delay)
	}
	path := fmt.Sprintf("img/%05d.jpg", i)
	if d.bad[i] {
		return Sample{}, &BadSampleError{Path: path, Err: errors.New("truncated JPEG")}
	}
	if i == d.fatal {
		return Sample{Path: path}, errors.New("disk on fire")
	}
	im := NewImage(d.h, d.w, 3)
	for k := range im.Pix {
		im.Pix[k] = uint8(i)
	}
	if d.textured {
		im = texture(d.h, d.w, 3, i)
	}
	s := Sample{Image: im, Label: i, Path: path}
	if d.dense {
		s = denseSample(d.h, d.w, Rect{Top: d.h / 4, Left: d.w / 4, H: d.h / 2, W: d.w / 2})
		s.Label, s.Path = i, path
	}
	return s, nil
}

func TestCachedDataset(t *testing.T) {
	ds := newMemDataset(10)
	ds.h, ds.w = 40, 60
	ds.bad = map[int]bool{4: true}
	c := NewCachedDataset(ds, ResizeSpec{Shorter: 20}, 0)
	for pass := range 3 {
		for i := range 10 {
			s, err := c.Sample(i)
			if i == 4 {
				var bad *BadSampleError
				if !errors.As(err, &bad) || bad.Path != "img/00004.jpg" {
					t.Fatalf("pass %d: bad sample error %v", pass, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Image.H != 20 || s.Image.W != 30 || s.Label != i || s.Image.Pix[0] != uint8(i) {
				t.Fatalf("sample %d: %v label %d", i, s.Image, s.Label)
			}
		}
	}
	if v := ds.visits.Load(); v != 10 {
		t.Errorf("underlying dataset read %d times, want 10", v)
	}
	if st := c.Stats(); st.Misses != 10 || st.Hits != 20 {
		t.Errorf("stats %+v", st)
	}

	// Dense samples are resized with their annotations; small images are
	// not upscaled.
	dd := newMemDataset(2)
	dd.h, dd.w, dd.dense = 40, 80, true
	cd := NewCachedDataset(dd, ResizeSpec{Shorter: 20}, 0)
	s, err := cd.Sample(1)
	if err != nil {
		t.Fatal(err)
	}
	if s.Image.H != 20 || s.Image.W != 40 || len(s.LabelMap) != 800 || len(s.Instances[0].Mask) != 800 {
		t.Fatalf("dense resize: %v %d", s.Image, len(s.LabelMap))
	}
	if b := s.Instances[0].Box; b != (Box{X: 10, Y: 5, W: 20, H: 10}) {
		t.Errorf("box %+v", b)
	}
	small := NewCachedDataset(dd, ResizeSpec{Shorter: 100}, 0)
	if s, _ := small.Sample(0); s.Image.H != 40 {
		t.Errorf("upscaled to %v", s.Image)
	}

	cfg := DefaultCacheConfig()
	cfg.ResizeShorter = 16
	w, err := cfg.Wrap(ds)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.(*CachedDataset); !ok {
		t.Errorf("Wrap returned %T", w)
	}
	cfg.Height = 3
	if _, err := cfg.Wrap(ds); err == nil {
		t.Error("height without width accepted")
	}
}
