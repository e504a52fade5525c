// Package cpu is peco's compute backend for CPUs: a compute.Backend (the
// interface GoMLX graphs are built against) that records a graph's ops and
// runs them with the project's own kernels — a packed, register-blocked
// matmul (cpu/gemm), contiguous element-wise and reduction loops (cpu/elem)
// and blocked transposes, gathers and scatters (cpu/layout) — instead of
// the generic per-element iterators of GoMLX's pure-Go backend.
//
// It registers itself as the backend "cpu" (peco --backend cpu). It
// implements the ops that peco's models and optimizers emit; an op it does
// not implement fails when the graph is built, with an error naming the op
// (use the "go" backend for such graphs). Buffers live in Go memory, so
// tensors move in and out without copies (shared buffers).
package cpu

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
)

// BackendName is the name the backend registers under.
const BackendName = "cpu"

func init() {
	compute.Register(BackendName, func(config string) (compute.Backend, error) { return New(config) })
}

// Backend is the CPU backend. It is safe for concurrent use.
type Backend struct {
	finalized bool
	// profile, when set (option "profile"), accumulates the time spent in
	// each op type; see OpProfile.
	profile *opProfile
	// noFusion (option "nofuse") runs element-wise chains op by op, for
	// comparisons.
	noFusion bool
	// noRemat (option "noremat") keeps every value read by the backward
	// pass alive instead of recomputing element-wise ones (see remat.go).
	noRemat bool
	// flops counts the floating-point operations of the executions run so
	// far (see FLOPs).
	flops atomic.Int64
}

var _ compute.Backend = (*Backend)(nil)

// New returns a CPU backend; it uses runtime.GOMAXPROCS(0) threads. config
// is a comma-separated list of options, possibly empty: "profile" times
// every op (see OpProfile), "nofuse" turns element-wise fusion off,
// "noremat" turns off the recomputation of element-wise values read late
// (see remat.go).
func New(config string) (*Backend, error) {
	b := &Backend{}
	for _, opt := range strings.Split(config, ",") {
		switch strings.TrimSpace(opt) {
		case "":
		case "profile":
			b.profile = newOpProfile()
		case "nofuse":
			b.noFusion = true
		case "noremat":
			b.noRemat = true
		default:
			return nil, fmt.Errorf("backend %q: unknown option %q (options: profile, nofuse, noremat)", BackendName, opt)
		}
	}
	return b, nil
}

// FLOPs returns the floating-point operations of all executions the backend
// has run, counted from each compiled graph's matmuls (2*M*N*K per batch
// entry) and convolutions (2 x output elements x taps x input channels per
// group, the zeros of an input dilation included); element-wise ops,
// reductions and data movement are not counted. The difference over a
// training step is the step's FLOPs, forward and backward as the graph has
// them (see Executable.FLOPs).
func (b *Backend) FLOPs() int64 { return b.flops.Load() }

// Name returns "cpu".
func (b *Backend) Name() string { return BackendName }

// PrefersNativeConvolution is true: ConvGeneral runs as a blocked implicit
// im2col over the packed matmul, faster than an explicit im2col graph
// (core.ConvolutionAdvisor, asked by backbones/conv).
func (b *Backend) PrefersNativeConvolution() bool { return true }

// String returns the backend's name.
func (b *Backend) String() string { return BackendName }

// Description describes the backend and its threads.
func (b *Backend) Description() string {
	return fmt.Sprintf("peco CPU backend (%d threads)", runtime.GOMAXPROCS(0))
}

// NumDevices is 1: the CPU.
func (b *Backend) NumDevices() int { return 1 }

// DeviceDescription describes the CPU.
func (b *Backend) DeviceDescription(compute.DeviceNum) string {
	return fmt.Sprintf("%s/%s, %d threads", runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
}

// Capabilities lists the ops and dtypes the backend implements.
func (b *Backend) Capabilities() compute.Capabilities {
	c := compute.Capabilities{Operations: map[compute.OpType]bool{}, DTypes: map[dtypes.DType]bool{}}
	for op := range implemented {
		c.Operations[op] = true
	}
	for _, dt := range supportedDTypes {
		c.DTypes[dt] = true
	}
	return c
}

// supportedDTypes are the dtypes buffers and ops handle.
var supportedDTypes = []dtypes.DType{
	dtypes.Bool, dtypes.Int8, dtypes.Int16, dtypes.Int32, dtypes.Int64,
	dtypes.Uint8, dtypes.Uint16, dtypes.Uint32, dtypes.Uint64, dtypes.Float32, dtypes.Float64,
}

func dtypeSupported(dt dtypes.DType) bool {
	for _, s := range supportedDTypes {
		if s == dt {
			return true
		}
	}
	return false
}

// Builder starts a new graph.
func (b *Backend) Builder(name string) compute.Builder { return newBuilder(b, name) }

// Finalize marks the backend finalized; buffers are ordinary Go memory.
func (b *Backend) Finalize() { b.finalized = true }

// IsFinalized reports whether Finalize was called.
func (b *Backend) IsFinalized() bool { return b.finalized }
