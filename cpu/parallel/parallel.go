// Package parallel runs the parts of one operation on a pool of long-lived
// worker goroutines, the way OpenMP runtimes do for PyTorch and oneDNN.
//
// The cpu backend runs a graph one op at a time, and most ops are split into
// a few parts, one per processor. Starting a goroutine per part and waiting
// on a sync.WaitGroup costs a wake-up of a parked OS thread on every op (tens
// of microseconds on a VM) and puts each part on whichever thread the
// scheduler picks next, so a part's data is often in the other core's cache.
// An op over a few hundred KB then runs slower on two threads than on one.
// The pool's workers instead keep spinning for a short while (SpinTime)
// after their last part, so back-to-back ops find them awake, and a part is
// taken by the first goroutine to ask for it, the caller included.
//
// Do does not decide how an operation is split: the caller's parts are the
// same whoever runs them, so results do not depend on the pool (a reduction
// split into parts sums them in part order, as before).
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// SpinTime is how long an idle worker keeps polling for the next operation
// before it parks its thread. Ops of a training step follow each other
// within microseconds; between steps (data loading, logging) the workers
// park and cost nothing.
const SpinTime = 100 * time.Microsecond

// job is one call of Do: parts handed out by an atomic counter.
type job struct {
	fn    func(part int)
	parts int64
	next  atomic.Int64 // the next part to hand out
	done  atomic.Int64 // parts finished
}

// run takes and runs parts of j until none is left.
func (j *job) run() {
	for {
		p := j.next.Add(1) - 1
		if p >= j.parts {
			return
		}
		j.fn(int(p))
		j.done.Add(1)
	}
}

// pool is the process's workers. Only one Do at a time uses them (busy);
// a Do that finds them in use, such as one nested in a part of another Do
// or one from a concurrent execution, starts goroutines of its own (as
// many as the pool would have used).
type pool struct {
	busy    sync.Mutex
	mu      sync.Mutex // guards workers
	workers []*worker
	current atomic.Pointer[job]
	gen     atomic.Uint64 // bumped for every published job
}

// worker is one long-lived goroutine; wake is its parking place.
type worker struct {
	sleeping atomic.Bool
	wake     chan struct{}
}

var thePool pool

// Do calls fn(0), ..., fn(parts-1), each once, on the calling goroutine and
// up to runtime.GOMAXPROCS(0)-1 pool workers, and returns when all calls
// have returned. With one part, or GOMAXPROCS 1, it calls them in order on
// the calling goroutine. Parts may run in any order and at the same time.
func Do(parts int, fn func(part int)) {
	if parts <= 0 {
		return
	}
	procs := runtime.GOMAXPROCS(0)
	if parts == 1 || procs == 1 {
		for p := range parts {
			fn(p)
		}
		return
	}
	helpers := min(parts, procs) - 1
	if !thePool.busy.TryLock() {
		spawn(helpers, parts, fn)
		return
	}
	defer thePool.busy.Unlock()
	thePool.do(helpers, parts, fn)
}

// spawn runs the parts on the calling goroutine and helpers fresh ones,
// handed out as the pool's workers take them.
func spawn(helpers, parts int, fn func(part int)) {
	j := &job{fn: fn, parts: int64(parts)}
	var wg sync.WaitGroup
	for range helpers {
		wg.Go(j.run)
	}
	j.run()
	wg.Wait()
}

// do publishes a job to the first helpers workers (starting them on first
// use), takes parts itself, and waits for the parts the workers took.
func (pl *pool) do(helpers, parts int, fn func(part int)) {
	ws := pl.ensure(helpers)
	j := &job{fn: fn, parts: int64(parts)}
	pl.current.Store(j)
	pl.gen.Add(1)
	for _, w := range ws[:helpers] {
		if w.sleeping.Load() {
			select {
			case w.wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
	j.run()
	for spins := 0; j.done.Load() < j.parts; spins++ {
		if spins&1023 == 1023 {
			runtime.Gosched() // a worker was descheduled: let it finish its part
		}
	}
	pl.current.Store(nil)
}

// ensure starts workers until there are at least n and returns them.
func (pl *pool) ensure(n int) []*worker {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for len(pl.workers) < n {
		w := &worker{wake: make(chan struct{}, 1)}
		pl.workers = append(pl.workers, w)
		go pl.loop(w, pl.gen.Load())
	}
	return pl.workers
}

// loop is a worker's life: wait for a job newer than the last one seen, help
// with it, repeat. Waiting spins for SpinTime, then parks on w.wake.
func (pl *pool) loop(w *worker, seen uint64) {
	for {
		seen = pl.wait(w, seen)
		if j := pl.current.Load(); j != nil {
			j.run()
		}
	}
}

// wait returns the generation of the next job after seen.
func (pl *pool) wait(w *worker, seen uint64) uint64 {
	deadline := time.Now().Add(SpinTime)
	for spins := 1; ; spins++ {
		if g := pl.gen.Load(); g != seen {
			return g
		}
		if spins&255 != 0 || time.Now().Before(deadline) {
			continue
		}
		// Park. Do checks sleeping after bumping gen, and we check gen
		// after setting sleeping (both sequentially consistent), so a job
		// published meanwhile is seen by one side or the other.
		w.sleeping.Store(true)
		if g := pl.gen.Load(); g != seen {
			w.sleeping.Store(false)
			return g
		}
		<-w.wake
		w.sleeping.Store(false)
		deadline = time.Now().Add(SpinTime)
	}
}
