package cpu

import (
	"fmt"
	"reflect"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
)

// Buffer is a tensor's storage: a Go slice of the dtype's Go type.
type Buffer struct {
	backend *Backend
	shape   shapes.Shape
	flat    any
	// finalized is set by Finalize or when the buffer was donated to an
	// execution.
	finalized bool
}

var _ compute.Buffer = (*Buffer)(nil)

// makeFlat allocates a zeroed slice of n elements of dtype dt.
func makeFlat(dt dtypes.DType, n int) any {
	return reflect.MakeSlice(reflect.SliceOf(dt.GoType()), n, n).Interface()
}

// Backend returns the buffer's backend.
func (b *Buffer) Backend() compute.Backend { return b.backend }

// Finalize releases the buffer's storage.
func (b *Buffer) Finalize() error {
	b.finalized = true
	b.flat = nil
	return nil
}

func (b *Buffer) check() error {
	if b == nil || b.finalized {
		return fmt.Errorf("cpu backend: buffer used after Finalize (or after being donated)")
	}
	return nil
}

// Shape returns the buffer's shape.
func (b *Buffer) Shape() (shapes.Shape, error) {
	if err := b.check(); err != nil {
		return shapes.Invalid(), err
	}
	return b.shape, nil
}

// DeviceNum is always 0.
func (b *Buffer) DeviceNum() (compute.DeviceNum, error) { return 0, b.check() }

// ToFlatData copies the buffer into flat, a slice of the same type and length.
func (b *Buffer) ToFlatData(flat any) error {
	if err := b.check(); err != nil {
		return err
	}
	dst, src := reflect.ValueOf(flat), reflect.ValueOf(b.flat)
	if dst.Kind() != reflect.Slice || dst.Type() != src.Type() || dst.Len() != src.Len() {
		return fmt.Errorf("cpu backend: ToFlatData: want a %s of length %d, got %T of length %d",
			src.Type(), src.Len(), flat, reflectLen(dst))
	}
	reflect.Copy(dst, src)
	return nil
}

func reflectLen(v reflect.Value) int {
	if v.Kind() == reflect.Slice {
		return v.Len()
	}
	return -1
}

// Data returns the buffer's storage itself (no copy).
func (b *Buffer) Data() (any, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	return b.flat, nil
}

// CopyToDevice copies the buffer (there is only device 0).
func (b *Buffer) CopyToDevice(deviceNum compute.DeviceNum) (compute.Buffer, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if deviceNum != 0 {
		return nil, fmt.Errorf("cpu backend: no device %d", deviceNum)
	}
	return b.backend.BufferFromFlatData(0, b.flat, b.shape)
}

// BufferFromFlatData copies flat (a slice of shape's dtype and size) into a
// new buffer.
func (b *Backend) BufferFromFlatData(deviceNum compute.DeviceNum, flat any, shape shapes.Shape) (compute.Buffer, error) {
	if deviceNum != 0 {
		return nil, fmt.Errorf("cpu backend: no device %d", deviceNum)
	}
	if !dtypeSupported(shape.DType) {
		return nil, fmt.Errorf("cpu backend: dtype %s is not supported", shape.DType)
	}
	src := reflect.ValueOf(flat)
	want := reflect.SliceOf(shape.DType.GoType())
	if src.Kind() != reflect.Slice || src.Type() != want || src.Len() != shape.Size() {
		return nil, fmt.Errorf("cpu backend: BufferFromFlatData: want a %s of length %d for shape %s, got %T of length %d",
			want, shape.Size(), shape, flat, reflectLen(src))
	}
	dst := makeFlat(shape.DType, shape.Size())
	reflect.Copy(reflect.ValueOf(dst), src)
	return &Buffer{backend: b, shape: shape.Clone(), flat: dst}, nil
}

// HasSharedBuffers is true: buffers are Go memory.
func (b *Backend) HasSharedBuffers() bool { return true }

// NewSharedBuffer returns a zeroed buffer and its storage, which the caller
// may write directly.
func (b *Backend) NewSharedBuffer(deviceNum compute.DeviceNum, shape shapes.Shape) (compute.Buffer, any, error) {
	if deviceNum != 0 {
		return nil, nil, fmt.Errorf("cpu backend: no device %d", deviceNum)
	}
	if !dtypeSupported(shape.DType) {
		return nil, nil, fmt.Errorf("cpu backend: dtype %s is not supported", shape.DType)
	}
	flat := makeFlat(shape.DType, shape.Size())
	return &Buffer{backend: b, shape: shape.Clone(), flat: flat}, flat, nil
}
