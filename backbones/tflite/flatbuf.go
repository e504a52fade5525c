package tflite

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds a minimal, bounds-checked FlatBuffers reader: just what the
// TFLite schema needs (tables, scalars, strings, vectors of scalars and of
// tables). Every read is checked against the buffer, so a truncated or corrupt
// file gives an error instead of a panic. Errors are raised with panic(fbError)
// inside the accessors and turned into ordinary errors by [Parse].

// fbError is a FlatBuffers decoding error, carried by panic inside this package
// and recovered in Parse.
type fbError struct{ msg string }

func (e fbError) Error() string { return e.msg }

func fbFail(format string, args ...any) {
	panic(fbError{fmt.Sprintf(format, args...)})
}

// fbuf is the raw bytes of a FlatBuffers file.
type fbuf []byte

func (b fbuf) check(pos, n int) {
	if pos < 0 || n < 0 || pos > len(b) || len(b)-pos < n {
		fbFail("offset %d+%d is outside the %d-byte file (truncated or corrupt)", pos, n, len(b))
	}
}

func (b fbuf) u8(pos int) uint8 { b.check(pos, 1); return b[pos] }
func (b fbuf) u16(pos int) uint16 {
	b.check(pos, 2)
	return binary.LittleEndian.Uint16(b[pos:])
}
func (b fbuf) u32(pos int) uint32 {
	b.check(pos, 4)
	return binary.LittleEndian.Uint32(b[pos:])
}
func (b fbuf) u64(pos int) uint64 {
	b.check(pos, 8)
	return binary.LittleEndian.Uint64(b[pos:])
}

// deref follows the uoffset stored at pos.
func (b fbuf) deref(pos int) int {
	off := int(b.u32(pos))
	target := pos + off
	b.check(target, 0)
	return target
}

// root returns the root table of the file.
func (b fbuf) root() table { return table{b: b, pos: b.deref(0)} }

// table is a FlatBuffers table at pos.
type table struct {
	b   fbuf
	pos int
}

// field returns the absolute position of field id, or 0 when absent.
func (t table) field(id int) int {
	vt := t.pos - int(int32(t.b.u32(t.pos)))
	vtSize := int(t.b.u16(vt))
	entry := 4 + 2*id
	if entry+2 > vtSize {
		return 0
	}
	off := int(t.b.u16(vt + entry))
	if off == 0 {
		return 0
	}
	return t.pos + off
}

func (t table) has(id int) bool { return t.field(id) != 0 }

func (t table) u8(id int, def uint8) uint8 {
	if p := t.field(id); p != 0 {
		return t.b.u8(p)
	}
	return def
}

func (t table) i32(id int, def int32) int32 {
	if p := t.field(id); p != 0 {
		return int32(t.b.u32(p))
	}
	return def
}

func (t table) u32(id int, def uint32) uint32 {
	if p := t.field(id); p != 0 {
		return t.b.u32(p)
	}
	return def
}

func (t table) u64(id int, def uint64) uint64 {
	if p := t.field(id); p != 0 {
		return t.b.u64(p)
	}
	return def
}

func (t table) f32(id int, def float32) float32 {
	if p := t.field(id); p != 0 {
		return math.Float32frombits(t.b.u32(p))
	}
	return def
}

func (t table) bool(id int) bool { return t.u8(id, 0) != 0 }

// sub returns the table referenced by field id; ok is false when absent.
func (t table) sub(id int) (table, bool) {
	p := t.field(id)
	if p == 0 {
		return table{}, false
	}
	return table{b: t.b, pos: t.b.deref(p)}, true
}

// vector returns the element start and length of the vector in field id
// (elemSize bytes per element), or (0, 0) when absent.
func (t table) vector(id, elemSize int) (start, n int) {
	p := t.field(id)
	if p == 0 {
		return 0, 0
	}
	v := t.b.deref(p)
	n = int(t.b.u32(v))
	if n > (len(t.b)-v-4)/max(elemSize, 1) {
		fbFail("vector of %d elements at offset %d runs past the end of the %d-byte file", n, v, len(t.b))
	}
	return v + 4, n
}

func (t table) bytes(id int) []byte {
	start, n := t.vector(id, 1)
	if n == 0 {
		return nil
	}
	return t.b[start : start+n]
}

func (t table) str(id int) string { return string(t.bytes(id)) }

func (t table) i32s(id int) []int32 {
	start, n := t.vector(id, 4)
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(t.b.u32(start + 4*i))
	}
	return out
}

func (t table) ints(id int) []int {
	v := t.i32s(id)
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func (t table) i64s(id int) []int64 {
	start, n := t.vector(id, 8)
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(t.b.u64(start + 8*i))
	}
	return out
}

func (t table) f32s(id int) []float32 {
	start, n := t.vector(id, 4)
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(t.b.u32(start + 4*i))
	}
	return out
}

// tables returns the tables of a vector of tables in field id.
func (t table) tables(id int) []table {
	start, n := t.vector(id, 4)
	out := make([]table, n)
	for i := range out {
		out[i] = table{b: t.b, pos: t.b.deref(start + 4*i)}
	}
	return out
}

var inf = math.Inf(1)
