// Package split runs a training step whose loss is computed outside the
// graph (a core.ExternalLoss, e.g. a plugin): the forward pass to the
// loss's inputs runs first, the loss and its gradients come from outside,
// then the training graph runs the forward pass again and back-propagates
// through the surrogate
//
//	sum(stop_grad(g) * x) + stop_grad(L - sum(g * x))
//
// whose value is L and whose gradient with respect to x is g. The forward
// pass is repeated with the same random numbers (the store's RNG state is
// put back after the first), so drop path and dropout draw alike in both.
package split

import (
	"fmt"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:revive // graph building reads best unqualified
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Surrogate returns the scalar whose value is l (a scalar input holding the
// external loss) and whose gradient with respect to x is g (an input shaped
// as x).
func Surrogate(x, g, l *Node) *Node {
	g = StopGradient(ConvertDType(g, x.DType()))
	dot := ReduceAllSum(Mul(g, x))
	return Add(dot, StopGradient(Sub(ConvertDType(l, x.DType()), dot)))
}

// KeepRNG runs fn (an execution that draws random numbers) and puts the
// store's RNG state back as it was before, so the next execution draws the
// same numbers.
func KeepRNG(store *model.Store, fn func() error) error {
	v := store.GetVariable("/" + model.RNGStateVariableName)
	var saved *tensors.Tensor
	if v != nil && v.HasValue() {
		cur, err := v.Value()
		if err != nil {
			return err
		}
		if saved, err = cur.LocalClone(); err != nil {
			return fmt.Errorf("saving the RNG state: %w", err)
		}
	}
	if err := fn(); err != nil {
		return err
	}
	v = store.GetVariable("/" + model.RNGStateVariableName)
	if v == nil {
		return nil
	}
	if saved == nil {
		// The execution created the state: start it again from the seed.
		return store.ResetRNGState()
	}
	return v.SetValue(saved)
}

// LossValue is a float32 scalar tensor of v (the external loss as a graph
// input).
func LossValue(v float64) *tensors.Tensor { return tensors.FromValue(float32(v)) }

// Prepare compiles exec for the inputs and initialises the store's new
// variables, so that KeepRNG saves the RNG state as it is after the
// initialisers drew from it, as a step computing its loss in the graph
// finds it when its own execution starts. Call it before the first KeepRNG.
func Prepare(backend compute.Backend, store *model.Store, exec *model.Exec, in []any) error {
	var inShapes []shapes.Shape
	for i, x := range in {
		t, ok := x.(*tensors.Tensor)
		if !ok {
			return fmt.Errorf("split: input %d is %T, want a tensor", i, x)
		}
		inShapes = append(inShapes, t.Shape())
	}
	if _, err := exec.Compile(inShapes...); err != nil {
		return err
	}
	return store.InitializeVariables(backend, nil)
}
