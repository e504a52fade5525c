package data

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// DefaultCacheBudget is the default memory budget of a decoded-image cache.
const DefaultCacheBudget int64 = 4 << 30

// ResizeSpec says at which resolution a cached image is stored.
type ResizeSpec struct {
	// Shorter > 0 downscales so the shorter side is Shorter, keeping the
	// aspect ratio; smaller images are kept as they are (never upscaled).
	Shorter int
	// H, W > 0 (with Shorter 0) resize to exactly H x W.
	H, W int
	// Filter is the resize filter (Bilinear, antialiased, by default).
	Filter Filter
}

// Apply resizes im as the spec says, returning im itself when nothing
// changes.
func (s ResizeSpec) Apply(im *Image) *Image {
	h, w, ok := s.size(im.H, im.W)
	if !ok {
		return im
	}
	return Resize(im, h, w, s.Filter)
}

// size returns the stored size of an h x w image and whether it differs.
func (s ResizeSpec) size(h, w int) (int, int, bool) {
	switch {
	case s.Shorter > 0:
		if min(h, w) <= s.Shorter {
			return h, w, false
		}
		nh, nw := ShorterSideSize(h, w, s.Shorter)
		return nh, nw, true
	case s.H > 0 && s.W > 0:
		return s.H, s.W, s.H != h || s.W != w
	}
	return h, w, false
}

// CacheKey identifies a cached value: the source (a path, or an index within
// one CachedDataset) and the resolution it is stored at.
type CacheKey struct {
	Path  string
	Index int
	Size  ResizeSpec
}

// CacheStats counts cache activity.
type CacheStats struct {
	// Hits counts lookups served from memory (including lookups that waited
	// for a concurrent load of the same key).
	Hits int64
	// Misses counts loads.
	Misses int64
	// Rejected counts loaded values not stored because the budget was full.
	Rejected int64
	// Entries and Bytes describe what is stored; Budget is the limit.
	Entries       int
	Bytes, Budget int64
}

// Cache is a concurrency-safe in-memory cache with a byte budget. Concurrent
// lookups of a missing key run its loader once and share the result.
//
// There is no eviction: once the budget is full, new values are returned but
// not stored. Training reads every sample once per epoch in a fresh order, for
// which keeping a fixed subset is optimal while LRU would evict every entry
// before its next use once the data exceeds the budget.
type Cache[V any] struct {
	budget int64
	size   func(V) int64

	mu      sync.Mutex
	entries map[CacheKey]*cacheEntry[V]
	used    int64

	hits, misses, rejected atomic.Int64
}

type cacheEntry[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// NewCache returns an empty cache holding at most budget bytes, as measured
// by size; budget <= 0 means DefaultCacheBudget.
func NewCache[V any](budget int64, size func(V) int64) *Cache[V] {
	if budget <= 0 {
		budget = DefaultCacheBudget
	}
	return &Cache[V]{budget: budget, size: size, entries: make(map[CacheKey]*cacheEntry[V])}
}

// NewImageCache returns a cache of decoded images, sized by their pixel
// bytes.
func NewImageCache(budget int64) *Cache[*Image] {
	return NewCache(budget, func(im *Image) int64 { return imageBytes(im) })
}

func imageBytes(im *Image) int64 {
	if im == nil {
		return 0
	}
	return int64(len(im.Pix)) + 64
}

var errLoaderPanicked = errors.New("data: cache loader panicked")

// Get returns the value of key, calling load to produce it when it is not
// cached (once, however many goroutines ask at the same time). Errors are
// returned to every waiter but not cached. Stored values are shared: callers
// must not modify them.
func (c *Cache[V]) Get(key CacheKey, load func() (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.mu.Unlock()
		<-e.done
		if e.err == nil {
			c.hits.Add(1)
		}
		return e.v, e.err
	}
	e := &cacheEntry[V]{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()
	c.misses.Add(1)

	finished := false
	defer func() {
		if finished {
			return
		}
		// load panicked: release waiters and forget the key.
		e.err = errLoaderPanicked
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
		close(e.done)
	}()
	v, err := load()
	e.v, e.err = v, err
	c.mu.Lock()
	if err != nil {
		delete(c.entries, key)
	} else if sz := c.size(v); c.used+sz > c.budget {
		delete(c.entries, key)
		c.rejected.Add(1)
	} else {
		c.used += sz
	}
	c.mu.Unlock()
	finished = true
	close(e.done)
	return v, err
}

// Stats returns the counters.
func (c *Cache[V]) Stats() CacheStats {
	c.mu.Lock()
	n, used := len(c.entries), c.used
	c.mu.Unlock()
	return CacheStats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Rejected: c.rejected.Load(),
		Entries: n, Bytes: used, Budget: c.budget,
	}
}

// CacheConfig configures a CachedDataset.
type CacheConfig struct {
	Enabled       bool   `mapstructure:"enabled" doc:"keep decoded images in memory so later epochs skip decoding"`
	BudgetBytes   int64  `mapstructure:"budget_bytes" doc:"memory budget of the cache in bytes (0 = 4 GiB)"`
	ResizeShorter int    `mapstructure:"resize_shorter" doc:"downscale cached images so the shorter side is this (0 = keep size)"`
	Height        int    `mapstructure:"height" doc:"cache images resized to exactly height x width (with resize_shorter 0)"`
	Width         int    `mapstructure:"width" doc:"cache images resized to exactly height x width (with resize_shorter 0)"`
	Interpolation string `mapstructure:"interpolation" doc:"filter of the cache's resize"`
}

// DefaultCacheConfig returns an enabled 4 GiB cache of full-size images.
func DefaultCacheConfig() CacheConfig {
	return CacheConfig{Enabled: true, BudgetBytes: DefaultCacheBudget, Interpolation: "bilinear"}
}

// Spec returns the resize the configuration asks for.
func (c CacheConfig) Spec() (ResizeSpec, error) {
	f, err := ParseFilter(c.Interpolation)
	if err != nil {
		return ResizeSpec{}, fmt.Errorf("data: cache: %w", err)
	}
	if c.ResizeShorter < 0 || c.Height < 0 || c.Width < 0 || (c.Height > 0) != (c.Width > 0) {
		return ResizeSpec{}, fmt.Errorf("data: cache: bad size resize_shorter=%d height=%d width=%d", c.ResizeShorter, c.Height, c.Width)
	}
	return ResizeSpec{Shorter: c.ResizeShorter, H: c.Height, W: c.Width, Filter: f}, nil
}

// Wrap returns ds wrapped in a CachedDataset, or ds itself when disabled.
func (c CacheConfig) Wrap(ds Dataset) (Dataset, error) {
	if !c.Enabled {
		return ds, nil
	}
	spec, err := c.Spec()
	if err != nil {
		return nil, err
	}
	return NewCachedDataset(ds, spec, c.BudgetBytes), nil
}

// CachedDataset wraps a Dataset and keeps each decoded (and pre-resized)
// sample in memory, so epochs after the first do no decoding. Dense
// annotations are resized with the image (TransformDense). Samples that fail
// with a *BadSampleError are remembered too, so a corrupt file is decoded once,
// but the error is still returned every time. Returned samples are shared:
// transforms must not modify them (the ones in this package do not).
//
// Pre-resizing changes what random crops see (they come from the smaller
// image), so use a size comfortably above the training resolution.
type CachedDataset struct {
	ds    Dataset
	spec  ResizeSpec
	cache *Cache[cachedSample]
}

type cachedSample struct {
	s   Sample
	err error
}

func sampleBytes(c cachedSample) int64 {
	n := imageBytes(c.s.Image) + int64(len(c.s.LabelMap)) + int64(len(c.s.Path)) + 128
	for _, in := range c.s.Instances {
		n += int64(len(in.Mask)) + 64
	}
	return n
}

// NewCachedDataset wraps ds with a cache of at most budgetBytes (<= 0 means
// DefaultCacheBudget) storing samples resized as spec says.
func NewCachedDataset(ds Dataset, spec ResizeSpec, budgetBytes int64) *CachedDataset {
	return &CachedDataset{ds: ds, spec: spec, cache: NewCache(budgetBytes, sampleBytes)}
}

// Len is the wrapped dataset's length.
func (c *CachedDataset) Len() int { return c.ds.Len() }

// Classes are the wrapped dataset's classes.
func (c *CachedDataset) Classes() []string { return c.ds.Classes() }

// Unwrap returns the wrapped dataset.
func (c *CachedDataset) Unwrap() Dataset { return c.ds }

// Stats returns the cache counters.
func (c *CachedDataset) Stats() CacheStats { return c.cache.Stats() }

// Sample returns sample i from memory, decoding and resizing it on first use.
func (c *CachedDataset) Sample(i int) (Sample, error) {
	cs, err := c.cache.Get(CacheKey{Index: i, Size: c.spec}, func() (cachedSample, error) {
		s, err := c.ds.Sample(i)
		if err != nil {
			var bad *BadSampleError
			if errors.As(err, &bad) {
				return cachedSample{s: Sample{Path: s.Path, Label: s.Label}, err: err}, nil
			}
			return cachedSample{}, err
		}
		if s.Image == nil {
			return cachedSample{s: s}, nil
		}
		h, w, resize := c.spec.size(s.Image.H, s.Image.W)
		if !resize {
			return cachedSample{s: s}, nil
		}
		if s.LabelMap == nil && s.Instances == nil {
			s.Image = Resize(s.Image, h, w, c.spec.Filter)
			return cachedSample{s: s}, nil
		}
		rs, err := TransformDense(s, DenseParams{Crop: Full(s.Image.H, s.Image.W), H: h, W: w, Filter: c.spec.Filter})
		if err != nil {
			return cachedSample{}, fmt.Errorf("data: cache sample %d: %w", i, err)
		}
		return cachedSample{s: rs}, nil
	})
	if err != nil {
		return Sample{}, err
	}
	return cs.s, cs.err
}
