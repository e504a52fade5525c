package sdk

import (
	"reflect"
	"strings"
	"testing"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
)

func TestTensorRoundTrip(t *testing.T) {
	for _, x := range []*Tensor{
		NewFloat32([]float32{1.5, -2, 3.25, 0, 1e-30, 7}, 2, 3),
		NewInt32([]int32{-1, 2, 1 << 30}, 3),
		{DType: Float64, Shape: []int{2}, F64: []float64{1.0 / 3, -4e300}},
		{DType: Int64, Shape: []int{1, 2}, I64: []int64{-1 << 40, 5}},
		{DType: Uint8, Shape: []int{3}, U8: []uint8{0, 128, 255}},
		{DType: Bool, Shape: []int{2, 2}, B: []bool{true, false, false, true}},
		NewFloat32(nil, 0, 4),
	} {
		p, err := x.ToProto("x")
		if err != nil {
			t.Fatalf("%s: %v", x, err)
		}
		if p.Name != "x" || len(p.Data) != x.Size()*bytesPerElement(x.DType) {
			t.Errorf("%s: proto %q with %d bytes", x, p.Name, len(p.Data))
		}
		y, err := FromProto(p)
		if err != nil {
			t.Fatalf("%s: %v", x, err)
		}
		if y.Len() != x.Len() || !reflect.DeepEqual(y.Shape, x.Shape) || y.String() != x.String() {
			t.Errorf("%s came back as %s", x, y)
		}
		if x.Len() > 0 && !reflect.DeepEqual(x, y) {
			t.Errorf("%+v came back as %+v", x, y)
		}
	}
}

func TestTensorErrors(t *testing.T) {
	if _, err := NewFloat32([]float32{1, 2, 3}, 2, 2).ToProto("a"); err == nil || !strings.Contains(err.Error(), `tensor "a": tensor float32[2 2] holds 3 elements, its shape says 4`) {
		t.Errorf("short data: %v", err)
	}
	for _, tc := range []struct {
		p    *pb.Tensor
		want string
	}{
		{&pb.Tensor{Name: "b", Dtype: Float32, Shape: []int64{2}, Data: make([]byte, 7)}, `tensor "b": float32[2] needs 8 bytes, got 7`},
		{&pb.Tensor{Name: "c", Dtype: pb.DType_DTYPE_UNSPECIFIED, Shape: []int64{1}}, `tensor "c": unknown dtype`},
		{&pb.Tensor{Name: "d", Dtype: Int32, Shape: []int64{-1}}, `tensor "d": dimension 0 of [-1] out of range`},
		{nil, "missing tensor"},
	} {
		if _, err := FromProto(tc.p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

func TestRowsAndConcat(t *testing.T) {
	x := NewInt32([]int32{0, 1, 2, 3, 4, 5}, 3, 2)
	parts := []*Tensor{RowSlice(x, 0, 1), RowSlice(x, 1, 3)}
	if got := parts[1].String(); got != "int32[2 2]" {
		t.Errorf("slice %s", got)
	}
	y, err := ConcatRows(parts)
	if err != nil || !reflect.DeepEqual(y, x) {
		t.Errorf("concat %+v, %v", y, err)
	}
	if _, err := ConcatRows([]*Tensor{x, NewInt32([]int32{1, 2, 3}, 1, 3)}); err == nil {
		t.Error("concatenating rows of different widths")
	}
}
