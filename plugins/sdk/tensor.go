package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
)

// DType is a tensor's element type.
type DType = pb.DType

// The element types a tensor can hold.
const (
	Float32 = pb.DType_DTYPE_FLOAT32
	Float64 = pb.DType_DTYPE_FLOAT64
	Int32   = pb.DType_DTYPE_INT32
	Int64   = pb.DType_DTYPE_INT64
	Uint8   = pb.DType_DTYPE_UINT8
	Bool    = pb.DType_DTYPE_BOOL
)

// Tensor is a dense row-major array with one of the typed slices set, the
// one of its DType.
type Tensor struct {
	DType DType
	Shape []int

	F32 []float32
	F64 []float64
	I32 []int32
	I64 []int64
	U8  []uint8
	B   []bool
}

// NewFloat32 returns a float32 tensor over data (not copied).
func NewFloat32(data []float32, shape ...int) *Tensor {
	return &Tensor{DType: Float32, Shape: shape, F32: data}
}

// NewInt32 returns an int32 tensor over data (not copied).
func NewInt32(data []int32, shape ...int) *Tensor {
	return &Tensor{DType: Int32, Shape: shape, I32: data}
}

// Size is the number of elements of the shape.
func (t *Tensor) Size() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Len is the number of elements the tensor's slice holds.
func (t *Tensor) Len() int {
	switch t.DType {
	case Float32:
		return len(t.F32)
	case Float64:
		return len(t.F64)
	case Int32:
		return len(t.I32)
	case Int64:
		return len(t.I64)
	case Uint8:
		return len(t.U8)
	case Bool:
		return len(t.B)
	}
	return -1
}

// String describes the tensor's dtype and shape, e.g. "float32[64 512]".
func (t *Tensor) String() string { return fmt.Sprintf("%s%v", DTypeName(t.DType), t.Shape) }

// DTypeName is the short name of a dtype, e.g. "float32".
func DTypeName(d DType) string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Uint8:
		return "uint8"
	case Bool:
		return "bool"
	}
	return "unknown-dtype"
}

// Check reports whether the slice of the tensor's dtype holds exactly the
// shape's number of elements and the shape has no negative dimension.
func (t *Tensor) Check() error {
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor %s has a negative dimension", t)
		}
	}
	if n := t.Len(); n != t.Size() {
		if n < 0 {
			return fmt.Errorf("tensor has unknown dtype %d", t.DType)
		}
		return fmt.Errorf("tensor %s holds %d elements, its shape says %d", t, n, t.Size())
	}
	return nil
}

// bytesPerElement is the encoded element size of a dtype.
func bytesPerElement(d DType) int {
	switch d {
	case Float32, Int32:
		return 4
	case Float64, Int64:
		return 8
	case Uint8, Bool:
		return 1
	}
	return 0
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// asBytes views a slice of fixed-size numbers as bytes (native order).
func asBytes[T int32 | int64 | float32 | float64 | uint8](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(s[0])))
}

// copyFromBytes decodes little-endian bytes into a new slice.
func copyFromBytes[T int32 | int64 | float32 | float64 | uint8](b []byte, n int) []T {
	out := make([]T, n)
	if n == 0 {
		return out
	}
	if littleEndian {
		copy(asBytes(out), b)
		return out
	}
	var z T
	size := int(unsafe.Sizeof(z))
	for i := range out {
		chunk := b[i*size : (i+1)*size]
		var v any
		switch size {
		case 1:
			v = chunk[0]
		case 4:
			v = binary.LittleEndian.Uint32(chunk)
		case 8:
			v = binary.LittleEndian.Uint64(chunk)
		}
		switch p := any(&out[i]).(type) {
		case *uint8:
			*p = v.(uint8)
		case *int32:
			*p = int32(v.(uint32))
		case *float32:
			*p = math.Float32frombits(v.(uint32))
		case *int64:
			*p = int64(v.(uint64))
		case *float64:
			*p = math.Float64frombits(v.(uint64))
		}
	}
	return out
}

// toLittleEndian encodes a slice as little-endian bytes (a copy).
func toLittleEndian[T int32 | int64 | float32 | float64 | uint8](s []T) []byte {
	if littleEndian {
		return append([]byte(nil), asBytes(s)...)
	}
	var z T
	size := int(unsafe.Sizeof(z))
	out := make([]byte, len(s)*size)
	for i, x := range s {
		switch v := any(x).(type) {
		case uint8:
			out[i] = v
		case int32:
			binary.LittleEndian.PutUint32(out[i*4:], uint32(v))
		case float32:
			binary.LittleEndian.PutUint32(out[i*4:], math.Float32bits(v))
		case int64:
			binary.LittleEndian.PutUint64(out[i*8:], uint64(v))
		case float64:
			binary.LittleEndian.PutUint64(out[i*8:], math.Float64bits(v))
		}
	}
	return out
}

// ToProto encodes the tensor for the wire under name.
func (t *Tensor) ToProto(name string) (*pb.Tensor, error) {
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", name, err)
	}
	p := &pb.Tensor{Name: name, Dtype: t.DType, Shape: make([]int64, len(t.Shape))}
	for i, d := range t.Shape {
		p.Shape[i] = int64(d)
	}
	switch t.DType {
	case Float32:
		p.Data = toLittleEndian(t.F32)
	case Float64:
		p.Data = toLittleEndian(t.F64)
	case Int32:
		p.Data = toLittleEndian(t.I32)
	case Int64:
		p.Data = toLittleEndian(t.I64)
	case Uint8:
		p.Data = append([]byte(nil), t.U8...)
	case Bool:
		p.Data = make([]byte, len(t.B))
		for i, b := range t.B {
			if b {
				p.Data[i] = 1
			}
		}
	}
	return p, nil
}

// FromProto decodes a wire tensor, checking that its data matches its
// dtype and shape.
func FromProto(p *pb.Tensor) (*Tensor, error) {
	if p == nil {
		return nil, fmt.Errorf("missing tensor")
	}
	t := &Tensor{DType: p.Dtype, Shape: make([]int, len(p.Shape))}
	for i, d := range p.Shape {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %q: dimension %d of %v out of range", p.Name, i, p.Shape)
		}
		t.Shape[i] = int(d)
	}
	size := bytesPerElement(p.Dtype)
	if size == 0 {
		return nil, fmt.Errorf("tensor %q: unknown dtype %v", p.Name, p.Dtype)
	}
	n := t.Size()
	if len(p.Data) != n*size {
		return nil, fmt.Errorf("tensor %q: %s%v needs %d bytes, got %d", p.Name, DTypeName(p.Dtype), t.Shape, n*size, len(p.Data))
	}
	switch p.Dtype {
	case Float32:
		t.F32 = copyFromBytes[float32](p.Data, n)
	case Float64:
		t.F64 = copyFromBytes[float64](p.Data, n)
	case Int32:
		t.I32 = copyFromBytes[int32](p.Data, n)
	case Int64:
		t.I64 = copyFromBytes[int64](p.Data, n)
	case Uint8:
		t.U8 = copyFromBytes[uint8](p.Data, n)
	case Bool:
		t.B = make([]bool, n)
		for i, b := range p.Data {
			t.B[i] = b != 0
		}
	}
	return t, nil
}
