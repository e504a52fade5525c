package data

import "math/rand/v2"

// Random streams. Every random decision of the data layer is drawn from a
// generator derived from the run's single seed, a stream id, the epoch and the
// sample index, so that results do not depend on goroutine scheduling, the
// number of workers, sharding or the batch a run resumed from.
const (
	// StreamSample is the stream handed to per-sample transforms
	// (augmentation, masking); see SampleRNG.
	StreamSample uint64 = iota
	// StreamShuffle drives the per-epoch permutation of sample indices.
	StreamShuffle
	// StreamSubstitute picks the augmentation of a sample that stands in for
	// a bad (skipped) sample.
	StreamSubstitute
	// StreamFixedView draws view v of a sample whose training targets are
	// computed ahead (MIM with precomputed tokens): the same (seed, v,
	// index) gives the same crop in every epoch that uses view v.
	StreamFixedView
)

// splitmix64 is the finalizer of the SplitMix64 generator: a bijective,
// well-mixing hash of a 64-bit word.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// mixSeed hashes its arguments into two independent 64-bit words suitable for
// seeding a PCG generator.
func mixSeed(seed int64, stream uint64, epoch, index int) (uint64, uint64) {
	h := splitmix64(uint64(seed))
	h = splitmix64(h ^ stream)
	h = splitmix64(h ^ uint64(int64(epoch)))
	h = splitmix64(h ^ uint64(int64(index)))
	return h, splitmix64(h ^ 0x6a09e667f3bcc909)
}

// StreamRNG returns a generator that depends only on (seed, stream, epoch,
// index). Distinct argument tuples give statistically independent sequences.
func StreamRNG(seed int64, stream uint64, epoch, index int) *rand.Rand {
	return rand.New(rand.NewPCG(mixSeed(seed, stream, epoch, index)))
}

// SampleRNG returns the generator used to augment and mask sample index in the
// given epoch: the same (seed, epoch, index) always yields the same sequence,
// whichever worker goroutine processes the sample.
func SampleRNG(seed int64, epoch, index int) *rand.Rand {
	return StreamRNG(seed, StreamSample, epoch, index)
}

// SplitRNG derives an independent child generator from r, consuming two
// values of r. Splitting before augmenting gives, say, masking a sequence that
// does not depend on how many values the augmentation consumes.
func SplitRNG(r *rand.Rand) *rand.Rand {
	a, b := r.Uint64(), r.Uint64()
	return rand.New(rand.NewPCG(splitmix64(a), splitmix64(b^0xbb67ae8584caa73b)))
}

// EpochPermutation returns the shuffled order of n sample indices for the
// given epoch; it depends only on seed, epoch and n.
func EpochPermutation(seed int64, epoch, n int) []int {
	return StreamRNG(seed, StreamShuffle, epoch, 0).Perm(n)
}
