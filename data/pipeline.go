package data

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Transform turns a decoded sample into whatever a task feeds its model
// (normalized float32 views, masks, targets). r is the sample's generator,
// SampleRNG(seed, epoch, index): all randomness must come from it. It runs on
// several goroutines at once and must not modify s (samples may be shared by
// a CachedDataset).
type Transform[T any] func(s Sample, r *rand.Rand) (T, error)

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	BatchSize int  `mapstructure:"batch_size" doc:"samples per batch on each shard"`
	Shuffle   bool `mapstructure:"shuffle" doc:"visit samples in a fresh seeded permutation each epoch"`
	DropLast  bool `mapstructure:"drop_last" doc:"drop the last, incomplete batch of each epoch"`
	Workers   int  `mapstructure:"workers" doc:"goroutines decoding and transforming samples (0 = number of CPUs)"`
	Prefetch  int  `mapstructure:"prefetch" doc:"batches prepared ahead of the consumer (0 = 3)"`
	// Seed, Rank and World are normally set by the runner, from the run's
	// seed and the distributed setup, rather than by the data config.
	Seed  int64 `mapstructure:"seed" doc:"seed of data order, augmentation and masking (set from the run seed)"`
	Rank  int   `mapstructure:"rank" doc:"index of this shard in [0, world)"`
	World int   `mapstructure:"world" doc:"number of shards, each seeing disjoint samples (0 = 1)"`
}

// DefaultPipelineConfig returns batches of 64, shuffled, last batch dropped,
// one worker per CPU, 3 batches of prefetch, a single shard.
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{BatchSize: 64, Shuffle: true, DropLast: true, Prefetch: 3, World: 1}
}

// Position locates a batch: batch Batch of epoch Epoch. A run that saves the
// position after its last consumed batch (Batch.Resume) and restarts from it
// sees exactly the batches it would have seen without the interruption.
type Position struct{ Epoch, Batch int }

// Batch is one batch of transformed samples.
type Batch[T any] struct {
	// Position of the batch.
	Position
	// Items holds the transformed samples in deterministic order.
	Items []T
	// Indices holds the dataset index of each item (a bad sample's
	// stand-in has its own index).
	Indices []int
	// Resume is the position of the following batch.
	Resume Position
}

// SkippedSample records one bad sample the pipeline replaced.
type SkippedSample struct {
	Epoch, Index int
	Path         string
	Err          error
}

// PipelineStats measures the input pipeline.
type PipelineStats struct {
	// Samples counts samples loaded and transformed, bad ones included.
	Samples int64
	// Skipped counts bad samples replaced.
	Skipped int64
	// Batches counts batches handed to the consumer.
	Batches int64
	// Workers is the number of worker goroutines.
	Workers int
	// Busy is the time workers spent decoding and transforming, summed over
	// workers.
	Busy time.Duration
	// Wait is the time the consumer spent blocked waiting for a batch: the
	// part of training that was input-bound.
	Wait time.Duration
	// Elapsed is the wall time since the first Start.
	Elapsed time.Duration
}

// SamplesPerSecond is the throughput the workers sustain — samples over
// busy time per worker — independent of how fast the consumer takes batches.
// Time a worker waits for a CPU counts as busy, so on an oversubscribed
// machine it is a lower bound.
func (s PipelineStats) SamplesPerSecond() float64 {
	if s.Busy <= 0 || s.Workers == 0 {
		return 0
	}
	return float64(s.Samples) / (s.Busy.Seconds() / float64(s.Workers))
}

// ErrPipelineClosed is returned by Next and Start after Close.
var ErrPipelineClosed = errors.New("data: pipeline closed")

// maxSkipRecords bounds the list SkippedSamples returns; Skipped counts all.
const maxSkipRecords = 1000

// Pipeline loads, transforms and batches the samples of a Dataset on worker
// goroutines, preparing a bounded number of batches ahead of the consumer.
//
// The order of samples in the batches depends only on the configuration
// (seed, shuffle, batch size, shard), never on the number of workers or their
// scheduling, and each sample is transformed with SampleRNG(seed, epoch,
// index). Epoch e visits a permutation of the indices derived from (seed, e)
// (or 0..n-1 without shuffling), truncated to a multiple of World; shard Rank
// takes every World-th index of it from Rank on, so shards are disjoint and
// equally long.
//
// A sample whose loading or transform fails with a *BadSampleError is replaced
// by the next good sample of the shard's epoch order (wrapping), with its own
// augmentation, so batches keep their size and later batches do not shift —
// which also keeps resumption exact. Replacements are counted (Skipped) and
// recorded (SkippedSamples). Any other error stops the pipeline: Next returns
// it, with the sample's index and path, when the consumer reaches its batch.
//
// Start, Next and the iterators are meant for one consumer goroutine; Close
// may be called from any goroutine.
type Pipeline[T any] struct {
	ds        Dataset
	transform Transform[T]
	cfg       PipelineConfig
	shardLen  int
	perEpoch  int

	mu      sync.Mutex
	cur     *stream[T]
	curNext Position // position of the batch the current stream yields next
	curEnd  int      // the current stream's endEpoch
	closed  bool
	started time.Time
	skips   []SkippedSample

	samples, skipped, batches, busy, wait atomic.Int64
}

// NewPipeline validates cfg, fills its defaults and returns a pipeline over
// ds. Nothing runs until Start (or an iterator) is called.
func NewPipeline[T any](ds Dataset, transform Transform[T], cfg PipelineConfig) (*Pipeline[T], error) {
	if ds == nil || transform == nil {
		return nil, errors.New("data: pipeline: nil dataset or transform")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 3
	}
	if cfg.World <= 0 {
		cfg.World = 1
	}
	if cfg.BatchSize <= 0 {
		return nil, fmt.Errorf("data: pipeline: batch_size %d must be positive", cfg.BatchSize)
	}
	if cfg.Rank < 0 || cfg.Rank >= cfg.World {
		return nil, fmt.Errorf("data: pipeline: rank %d outside [0, %d)", cfg.Rank, cfg.World)
	}
	p := &Pipeline[T]{ds: ds, transform: transform, cfg: cfg}
	p.shardLen = ds.Len() / cfg.World
	if cfg.DropLast {
		p.perEpoch = p.shardLen / cfg.BatchSize
	} else {
		p.perEpoch = (p.shardLen + cfg.BatchSize - 1) / cfg.BatchSize
	}
	if p.perEpoch == 0 {
		return nil, fmt.Errorf("data: pipeline: %d samples over %d shards make no batch of %d", ds.Len(), cfg.World, cfg.BatchSize)
	}
	return p, nil
}

// Config returns the configuration with defaults filled in.
func (p *Pipeline[T]) Config() PipelineConfig { return p.cfg }

// BatchesPerEpoch is the number of batches each shard yields per epoch.
func (p *Pipeline[T]) BatchesPerEpoch() int { return p.perEpoch }

// ShardLen is the number of samples each shard visits per epoch.
func (p *Pipeline[T]) ShardLen() int { return p.shardLen }

// Order returns the dataset indices this shard visits in epoch, in order.
func (p *Pipeline[T]) Order(epoch int) []int {
	n := p.ds.Len()
	var perm []int
	if p.cfg.Shuffle {
		perm = EpochPermutation(p.cfg.Seed, epoch, n)
	} else {
		perm = make([]int, n)
		for i := range perm {
			perm[i] = i
		}
	}
	order := make([]int, p.shardLen)
	for k := range order {
		order[k] = perm[k*p.cfg.World+p.cfg.Rank]
	}
	return order
}

// Skipped returns how many bad samples have been replaced so far.
func (p *Pipeline[T]) Skipped() int { return int(p.skipped.Load()) }

// SkippedSamples returns the first bad samples met (at most 1000).
func (p *Pipeline[T]) SkippedSamples() []SkippedSample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]SkippedSample(nil), p.skips...)
}

// Stats returns the throughput counters.
func (p *Pipeline[T]) Stats() PipelineStats {
	p.mu.Lock()
	started := p.started
	p.mu.Unlock()
	var elapsed time.Duration
	if !started.IsZero() {
		elapsed = time.Since(started)
	}
	return PipelineStats{
		Samples: p.samples.Load(), Skipped: p.skipped.Load(), Batches: p.batches.Load(),
		Workers: p.cfg.Workers, Busy: time.Duration(p.busy.Load()), Wait: time.Duration(p.wait.Load()),
		Elapsed: elapsed,
	}
}

// Start begins producing batches from position start until the end of epoch
// endEpoch-1 (endEpoch <= 0: forever), crossing epoch boundaries without
// draining the prefetch queue. A running stream is stopped first.
func (p *Pipeline[T]) Start(start Position, endEpoch int) error {
	if start.Epoch < 0 || start.Batch < 0 || start.Batch > p.perEpoch {
		return fmt.Errorf("data: pipeline: start %+v outside [0, %d] batches", start, p.perEpoch)
	}
	if start.Batch == p.perEpoch {
		start = Position{Epoch: start.Epoch + 1}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPipelineClosed
	}
	old := p.cur
	p.cur = nil
	p.mu.Unlock()
	if old != nil {
		old.stop()
	}
	s := &stream[T]{
		p: p, quit: make(chan struct{}),
		ready: make(chan *batchJob[T], p.cfg.Prefetch),
		jobs:  make(chan slotJob[T], p.cfg.Workers),
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrPipelineClosed
	}
	if p.started.IsZero() {
		p.started = time.Now()
	}
	p.cur = s
	p.curNext, p.curEnd = start, endEpoch
	p.mu.Unlock()
	s.wg.Add(1 + p.cfg.Workers)
	go s.produce(start, endEpoch)
	for range p.cfg.Workers {
		go s.work()
	}
	return nil
}

// Next returns the next batch of the stream begun by Start. It returns io.EOF
// after the last batch, ErrPipelineClosed after Close, and otherwise the first
// non-skippable error, after which the stream is stopped.
func (p *Pipeline[T]) Next() (Batch[T], error) {
	p.mu.Lock()
	s, closed := p.cur, p.closed
	p.mu.Unlock()
	switch {
	case closed:
		return Batch[T]{}, ErrPipelineClosed
	case s == nil:
		return Batch[T]{}, errors.New("data: pipeline: Next before Start")
	}
	return s.next()
}

// BatchAt returns the batch at position pos for a training loop that runs
// to the end of epoch endEpoch-1: it continues the current stream when pos is
// the batch it yields next, and (re)starts the stream at pos otherwise (the
// first call, after Stop, or after a resume). Running off the end is an error.
func (p *Pipeline[T]) BatchAt(pos Position, endEpoch int) (Batch[T], error) {
	if pos.Batch == p.perEpoch {
		pos = Position{Epoch: pos.Epoch + 1}
	}
	p.mu.Lock()
	running := p.cur != nil && p.curNext == pos && p.curEnd == endEpoch
	p.mu.Unlock()
	if !running {
		if err := p.Start(pos, endEpoch); err != nil {
			return Batch[T]{}, err
		}
	}
	b, err := p.Next()
	if err == io.EOF {
		return b, fmt.Errorf("data: pipeline: no batch at %+v (the stream ends at epoch %d)", pos, endEpoch)
	}
	if err != nil {
		return b, err
	}
	p.mu.Lock()
	p.curNext = b.Resume
	if p.curNext.Batch == p.perEpoch {
		p.curNext = Position{Epoch: p.curNext.Epoch + 1}
	}
	p.mu.Unlock()
	return b, nil
}

// Stop stops the current stream, if any, and waits for its goroutines.
func (p *Pipeline[T]) Stop() {
	p.mu.Lock()
	s := p.cur
	p.cur = nil
	p.mu.Unlock()
	if s != nil {
		s.stop()
	}
}

// Close stops the pipeline's goroutines and waits for them to exit. It is
// idempotent and always returns nil.
func (p *Pipeline[T]) Close() error {
	p.mu.Lock()
	p.closed = true
	s := p.cur
	p.cur = nil
	p.mu.Unlock()
	if s != nil {
		s.stop()
	}
	return nil
}

// Batches iterates from start to the end of epoch endEpoch-1 (endEpoch <= 0:
// forever). An error is yielded once, as the last element. Breaking out of
// the loop stops the workers.
func (p *Pipeline[T]) Batches(start Position, endEpoch int) iter.Seq2[Batch[T], error] {
	return func(yield func(Batch[T], error) bool) {
		if err := p.Start(start, endEpoch); err != nil {
			yield(Batch[T]{}, err)
			return
		}
		defer p.Stop()
		for {
			b, err := p.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Batch[T]{}, err)
				return
			}
			if !yield(b, nil) {
				return
			}
		}
	}
}

// Epoch iterates over the batches of one epoch.
func (p *Pipeline[T]) Epoch(epoch int) iter.Seq2[Batch[T], error] {
	return p.Batches(Position{Epoch: epoch}, epoch+1)
}

// stream is one run of the producer and workers.
type stream[T any] struct {
	p     *Pipeline[T]
	quit  chan struct{}
	ready chan *batchJob[T] // batches in order; closed after the last
	jobs  chan slotJob[T]
	wg    sync.WaitGroup
	once  sync.Once
	// err is the stream's terminal error, read and written by the consumer.
	err error
}

type batchJob[T any] struct {
	pos     Position
	resume  Position
	items   []T
	indices []int
	pending atomic.Int32
	done    chan struct{}
	errs    []error // per slot, nil when fine
}

type slotJob[T any] struct {
	b     *batchJob[T]
	slot  int
	k     int // position in the shard's epoch order
	order []int
}

func (s *stream[T]) stop() {
	s.once.Do(func() { close(s.quit) })
	s.wg.Wait()
}

func (s *stream[T]) produce(start Position, endEpoch int) {
	defer s.wg.Done()
	defer close(s.jobs)
	defer close(s.ready)
	p := s.p
	bs := p.cfg.BatchSize
	for epoch := start.Epoch; endEpoch <= 0 || epoch < endEpoch; epoch++ {
		order := p.Order(epoch)
		first := 0
		if epoch == start.Epoch {
			first = start.Batch
		}
		for bi := first; bi < p.perEpoch; bi++ {
			lo, hi := bi*bs, min((bi+1)*bs, len(order))
			b := &batchJob[T]{
				pos:     Position{Epoch: epoch, Batch: bi},
				resume:  Position{Epoch: epoch, Batch: bi + 1},
				items:   make([]T, hi-lo),
				indices: make([]int, hi-lo),
				errs:    make([]error, hi-lo),
				done:    make(chan struct{}),
			}
			if bi+1 == p.perEpoch {
				b.resume = Position{Epoch: epoch + 1}
			}
			b.pending.Store(int32(hi - lo))
			select {
			case s.ready <- b:
			case <-s.quit:
				return
			}
			for k := lo; k < hi; k++ {
				select {
				case s.jobs <- slotJob[T]{b: b, slot: k - lo, k: k, order: order}:
				case <-s.quit:
					return
				}
			}
		}
	}
}

func (s *stream[T]) work() {
	defer s.wg.Done()
	for {
		select {
		case j, ok := <-s.jobs:
			if !ok {
				return
			}
			s.process(j)
			if j.b.pending.Add(-1) == 0 {
				close(j.b.done)
			}
		case <-s.quit:
			return
		}
	}
}

// process loads and transforms one slot, replacing bad samples.
func (s *stream[T]) process(j slotJob[T]) {
	p := s.p
	epoch := j.b.pos.Epoch
	orig := j.order[j.k]
	n := len(j.order)
	for attempt := 0; attempt < n; attempt++ {
		idx := j.order[(j.k+attempt)%n]
		var r *rand.Rand
		if attempt == 0 {
			r = SampleRNG(p.cfg.Seed, epoch, idx)
		} else {
			// A stand-in gets an augmentation of its own, distinct from its
			// regular appearance in the epoch and from other stand-ins.
			r = StreamRNG(int64(splitmix64(uint64(p.cfg.Seed)^uint64(orig))), StreamSubstitute, epoch, idx)
		}
		t0 := time.Now()
		item, path, err := s.load(idx, epoch, r)
		p.busy.Add(int64(time.Since(t0)))
		p.samples.Add(1)
		if err == nil {
			j.b.items[j.slot] = item
			j.b.indices[j.slot] = idx
			return
		}
		var bad *BadSampleError
		if !errors.As(err, &bad) {
			if path == "" {
				j.b.errs[j.slot] = fmt.Errorf("data: pipeline: epoch %d sample %d: %w", epoch, idx, err)
			} else {
				j.b.errs[j.slot] = fmt.Errorf("data: pipeline: epoch %d sample %d (%s): %w", epoch, idx, path, err)
			}
			return
		}
		if path == "" {
			path = bad.Path
		}
		p.skipped.Add(1)
		p.mu.Lock()
		if len(p.skips) < maxSkipRecords {
			p.skips = append(p.skips, SkippedSample{Epoch: epoch, Index: idx, Path: path, Err: err})
		}
		p.mu.Unlock()
		select {
		case <-s.quit:
			j.b.errs[j.slot] = ErrPipelineClosed
			return
		default:
		}
	}
	j.b.errs[j.slot] = fmt.Errorf("data: pipeline: epoch %d: every sample of the shard is bad", epoch)
}

// load reads and transforms sample idx, returning its path when known.
func (s *stream[T]) load(idx, epoch int, r *rand.Rand) (item T, path string, err error) {
	smp, err := s.p.ds.Sample(idx)
	if err != nil {
		return item, smp.Path, err
	}
	smp.Index, smp.Epoch = idx, epoch
	item, err = s.p.transform(smp, r)
	return item, smp.Path, err
}

func (s *stream[T]) next() (Batch[T], error) {
	if s.err != nil {
		return Batch[T]{}, s.err
	}
	p := s.p
	t0 := time.Now()
	var b *batchJob[T]
	select {
	case bj, ok := <-s.ready:
		if !ok {
			s.err = io.EOF
			return Batch[T]{}, io.EOF
		}
		b = bj
	case <-s.quit:
		return Batch[T]{}, ErrPipelineClosed
	}
	select {
	case <-b.done:
	case <-s.quit:
		return Batch[T]{}, ErrPipelineClosed
	}
	p.wait.Add(int64(time.Since(t0)))
	for _, err := range b.errs {
		if err != nil {
			s.err = err
			// Stop the workers; later calls return the same error.
			s.stop()
			return Batch[T]{}, err
		}
	}
	p.batches.Add(1)
	return Batch[T]{Position: b.pos, Items: b.items, Indices: b.indices, Resume: b.resume}, nil
}

// Metrics returns the stats as metrics-log fields: the input pipeline's own
// throughput (samples/s per its busy workers), the time the consumer waited
// for data, and the number of bad samples replaced.
func (s PipelineStats) Metrics(prefix string) map[string]float64 {
	return map[string]float64{
		prefix + "samples_per_sec": s.SamplesPerSecond(),
		prefix + "wait_seconds":    s.Wait.Seconds(),
		prefix + "skipped":         float64(s.Skipped),
	}
}
