package vit

import (
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
)

func TestAdaptPosition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Preset, cfg.ImageSize, cfg.PatchSize, cfg.Dim, cfg.Depth, cfg.Heads = "", 32, 8, 4, 1, 2
	cfg.RelPosBias = RelPosShared
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := b.(*ViT) // grid 4
	// pos_embed of a grid-2 model: [CLS] row 9s, grid rows constant 1..4 per channel index.
	src := make([]float32, 0, 5*4)
	src = append(src, 9, 9, 9, 9)
	for range 4 {
		src = append(src, 1, 2, 3, 4)
	}
	out, ok, err := m.AdaptPosition("/backbone/pos_embed", tensors.FromFlatDataAndDimensions(src, 1, 5, 4))
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if d := out.Shape().Dimensions; d[1] != 17 || d[2] != 4 {
		t.Fatalf("shape %v", d)
	}
	got := tensors.MustCopyFlatData[float32](out)
	for i, v := range got {
		want := float32(i%4 + 1)
		if i < 4 {
			want = 9
		}
		if v != want {
			t.Fatalf("value %d = %v, want %v (the [CLS] row kept, a constant grid stays constant)", i, v, want)
		}
	}
	// rel_pos_bias_table of grid 2: 3x3 offsets + 3 [CLS] entries, 2 heads.
	tab := make([]float32, 12*2)
	for i := range tab {
		tab[i] = 0.5
	}
	tab[9*2], tab[11*2+1] = 7, 8
	out, ok, err = m.AdaptPosition("/backbone/rel_pos_bias/rel_pos_bias_table", tensors.FromFlatDataAndDimensions(tab, 12, 2))
	if err != nil || !ok || out.Shape().Dimensions[0] != 7*7+3 {
		t.Fatalf("%v %v %v", out, ok, err)
	}
	vals := tensors.MustCopyFlatData[float32](out)
	if vals[49*2] != 7 || vals[51*2+1] != 8 || vals[0] != 0.5 || vals[48*2+1] != 0.5 {
		t.Errorf("table: [CLS] entries or offsets changed: %v", vals)
	}
	// The model's own shape needs nothing.
	if _, ok, _ := m.AdaptPosition("/backbone/pos_embed", tensors.FromFlatDataAndDimensions(make([]float32, 17*4), 1, 17, 4)); ok {
		t.Error("resized a pos_embed that fits")
	}
	if _, ok, _ := m.AdaptPosition("/backbone/blocks/0/attn/qkv/weight", tensors.FromFlatDataAndDimensions(make([]float32, 4), 2, 2)); ok {
		t.Error("resized a weight")
	}
}
