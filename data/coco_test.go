package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"image/color"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
)

// rdCOCOFiles is a COCO fixture: image 10 (b.png, 4x5) with an uncompressed
// RLE crowd mask and a compressed RLE mask, image 2 (a.png, 4x6) with a
// rectangle polygon and an annotation without segmentation, image 5 (c.png)
// without annotations. Category ids 90, 7, 3 map to indices 2, 1, 0.
func rdCOCOFiles(t testing.TB, mutate func(js map[string]any)) map[string][]byte {
	t.Helper()
	js := map[string]any{
		"images": []any{
			map[string]any{"id": 10, "file_name": "b.png", "height": 4, "width": 5},
			map[string]any{"id": 2, "file_name": "a.png", "height": 4, "width": 6},
			map[string]any{"id": 5, "file_name": "c.png", "height": 3, "width": 3},
		},
		"categories": []any{
			map[string]any{"id": 90, "name": "zebra"},
			map[string]any{"id": 7, "name": "cat"},
			map[string]any{"id": 3, "name": "dog"},
		},
		"annotations": []any{
			map[string]any{"id": 100, "image_id": 10, "category_id": 90, "iscrowd": 1, "area": 3,
				"bbox":         []float64{0, 0, 4, 4},
				"segmentation": map[string]any{"counts": []int{3, 2, 10, 1, 4}, "size": []int{4, 5}}},
			map[string]any{"id": 101, "image_id": 10, "category_id": 3, "iscrowd": 0, "area": 3,
				"bbox":         []float64{0.5, 1, 2, 3.25},
				"segmentation": map[string]any{"counts": "32:OJ", "size": []int{4, 5}}},
			map[string]any{"id": 102, "image_id": 2, "category_id": 7, "iscrowd": 0, "area": 6,
				"bbox":         []float64{1, 1, 3, 2},
				"segmentation": [][]float64{{1, 1, 4, 1, 4, 3, 1, 3}}},
			map[string]any{"id": 103, "image_id": 2, "category_id": 3, "iscrowd": 0, "area": 1,
				"bbox": []float64{0, 0, 1, 1}, "segmentation": []any{}},
		},
	}
	if mutate != nil {
		mutate(js)
	}
	raw, err := json.Marshal(js)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"annotations/instances_val2017.json": raw,
		"val2017/a.png":                      rdPNG(t, rdSolid(4, 6, color.NRGBA{10, 20, 30, 255})),
		"val2017/b.png":                      rdPNG(t, rdSolid(4, 5, color.NRGBA{40, 50, 60, 255})),
		"val2017/c.png":                      rdPNG(t, rdSolid(3, 3, color.NRGBA{70, 80, 90, 255})),
	}
}

func TestCOCOFixture(t *testing.T) {
	roots := rdRoots(t, rdCOCOFiles(t, nil))
	var ref []Sample
	for _, form := range []string{"dir", "tar", "tgz"} {
		d, err := OpenCOCO(COCOConfig{Root: roots[form], Images: "val2017"})
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		if d.Len() != 3 || d.NumInstances() != 4 {
			t.Fatalf("%s: Len %d instances %d, want 3, 4", form, d.Len(), d.NumInstances())
		}
		if want := []string{"dog", "cat", "zebra"}; !slices.Equal(d.Classes(), want) {
			t.Errorf("classes %v, want %v", d.Classes(), want)
		}
		for k, id := range []int64{3, 7, 90} {
			if d.CategoryID(k) != id {
				t.Errorf("CategoryID(%d) = %d, want %d", k, d.CategoryID(k), id)
			}
			if got, ok := d.CategoryIndex(id); !ok || got != k {
				t.Errorf("CategoryIndex(%d) = %d, %v", id, got, ok)
			}
		}
		if _, ok := d.CategoryIndex(4); ok {
			t.Error("CategoryIndex(4) found")
		}
		if ids := []int64{d.ImageID(0), d.ImageID(1), d.ImageID(2)}; !slices.Equal(ids, []int64{2, 5, 10}) {
			t.Errorf("image ids %v, want sorted [2 5 10]", ids)
		}
		var got []Sample
		for i := 0; i < d.Len(); i++ {
			s, err := d.Sample(i)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		a, c, b := got[0], got[1], got[2]
		if a.Label != -1 || a.Image.H != 4 || a.Image.W != 6 || !strings.HasSuffix(a.Path, "/val2017/a.png") {
			t.Errorf("sample 0: %+v", a)
		}
		if len(c.Instances) != 0 {
			t.Errorf("image 5 has %d instances", len(c.Instances))
		}
		if len(a.Instances) != 2 || len(b.Instances) != 2 {
			t.Fatalf("instances %d, %d; want 2, 2", len(a.Instances), len(b.Instances))
		}
		rect := []uint8{
			0, 0, 0, 0, 0, 0,
			0, 1, 1, 1, 0, 0,
			0, 1, 1, 1, 0, 0,
			0, 0, 0, 0, 0, 0,
		}
		if in := a.Instances[0]; in.Category != 1 || in.Box != (Box{1, 1, 3, 2}) || in.IsCrowd || in.Area != 6 || !bytes.Equal(in.Mask, rect) {
			t.Errorf("polygon instance %+v", in)
		}
		if in := a.Instances[1]; in.Category != 0 || in.Mask != nil {
			t.Errorf("instance without segmentation %+v", in)
		}
		if in := b.Instances[0]; in.Category != 2 || !in.IsCrowd || !bytes.Equal(in.Mask, rdMask4x5) {
			t.Errorf("uncompressed rle instance %+v", in)
		}
		if in := b.Instances[1]; in.Category != 0 || in.IsCrowd || in.Box != (Box{0.5, 1, 2, 3.25}) || !bytes.Equal(in.Mask, rdMask4x5) {
			t.Errorf("compressed rle instance %+v", in)
		}
		if form == "dir" {
			ref = got
			continue
		}
		for i := range got {
			if !bytes.Equal(got[i].Image.Pix, ref[i].Image.Pix) || len(got[i].Instances) != len(ref[i].Instances) {
				t.Errorf("%s: sample %d differs from the folder form", form, i)
			}
		}
	}
}

func TestCOCOErrors(t *testing.T) {
	addAnn := func(ann map[string]any) func(map[string]any) {
		return func(js map[string]any) { js["annotations"] = append(js["annotations"].([]any), ann) }
	}
	tests := []struct {
		name   string
		mutate func(map[string]any)
		files  func(map[string][]byte)
		want   []string
		// skipOpen: with SkipBad, opening succeeds and Skipped has one entry;
		// otherwise the image stays, its Sample a *BadSampleError.
		skipOpen bool
	}{
		{name: "missing image id", mutate: addAnn(map[string]any{"id": 555, "image_id": 99, "category_id": 3, "bbox": []int{0, 0, 1, 1}}),
			want: []string{"annotation 555", "image id 99"}, skipOpen: true},
		{name: "unknown category", mutate: addAnn(map[string]any{"id": 556, "image_id": 2, "category_id": 4, "bbox": []int{0, 0, 1, 1}}),
			want: []string{"annotation 556", "category id 4", "val2017/a.png"}, skipOpen: true},
		{name: "bad bbox", mutate: addAnn(map[string]any{"id": 557, "image_id": 2, "category_id": 3, "bbox": []int{0, 0, 1}}),
			want: []string{"annotation 557", "bbox"}, skipOpen: true},
		{name: "rle size mismatch", mutate: addAnn(map[string]any{"id": 558, "image_id": 2, "category_id": 3, "bbox": []int{0, 0, 1, 1},
			"segmentation": map[string]any{"counts": []int{20}, "size": []int{4, 5}}}),
			want: []string{"annotation 558", "size [4 5] differs"}, skipOpen: true},
		{name: "rle count sum", mutate: addAnn(map[string]any{"id": 559, "image_id": 10, "category_id": 3, "bbox": []int{0, 0, 1, 1},
			"segmentation": map[string]any{"counts": "32:", "size": []int{4, 5}}}),
			want: []string{"annotation 559", "counts cover 15 pixels"}, skipOpen: true},
		{name: "odd polygon", mutate: addAnn(map[string]any{"id": 560, "image_id": 10, "category_id": 3, "bbox": []int{0, 0, 1, 1},
			"segmentation": [][]float64{{1, 2, 3}}}),
			want: []string{"annotation 560", "odd number"}, skipOpen: true},
		{name: "missing image file", files: func(f map[string][]byte) { delete(f, "val2017/b.png") },
			want: []string{"image 10 file", "val2017/b.png", "annotation 100", "no such file"}},
		{name: "corrupt image", files: func(f map[string][]byte) { f["val2017/b.png"] = f["val2017/b.png"][:40] },
			want: []string{"decoding", "val2017/b.png"}},
		{name: "image size mismatch", files: func(f map[string][]byte) { f["val2017/b.png"] = f["val2017/a.png"] },
			want: []string{"val2017/b.png is 6x4", "says 5x4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := rdCOCOFiles(t, tc.mutate)
			if tc.files != nil {
				tc.files(files)
			}
			roots := rdRoots(t, files)
			check := func(err error) {
				t.Helper()
				for _, w := range tc.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v does not mention %q", err, w)
					}
				}
			}
			for _, form := range []string{"dir", "tar.gz"} {
				strict, err := OpenCOCO(COCOConfig{Root: roots[form], Images: "val2017"})
				if err == nil {
					// Problems found only when decoding.
					_, err = strict.Sample(2)
					var bad *BadSampleError
					if errors.As(err, &bad) {
						t.Errorf("strict Sample returned a BadSampleError: %v", err)
					}
				}
				check(err)
				d, err := OpenCOCO(COCOConfig{Root: roots[form], Images: "val2017", SkipBad: true})
				if err != nil {
					t.Fatalf("SkipBad open: %v", err)
				}
				if tc.skipOpen {
					sk := d.Skipped()
					if len(sk) != 1 {
						t.Fatalf("skipped %v, want 1", sk)
					}
					check(sk[0])
					if d.NumInstances() != 4 {
						t.Errorf("NumInstances %d, want 4", d.NumInstances())
					}
					continue
				}
				_, err = d.Sample(2)
				var bad *BadSampleError
				if !errors.As(err, &bad) || !strings.HasSuffix(bad.Path, "val2017/b.png") {
					t.Errorf("SkipBad sample error %v, want a *BadSampleError for b.png", err)
				}
				check(err)
				if _, err := d.Sample(0); err != nil {
					t.Errorf("good sample: %v", err)
				}
			}
		})
	}
}

func TestCOCOConfigErrors(t *testing.T) {
	roots := rdRoots(t, rdCOCOFiles(t, nil))
	tests := []struct {
		cfg  COCOConfig
		want string
	}{
		{COCOConfig{Root: roots["dir"], Images: "train2017"}, "coco images folder"},
		{COCOConfig{Root: roots["dir"], Images: "val2017", Annotations: "annotations/nope.json"}, "nope.json"},
		{COCOConfig{Root: roots["dir"]}, "neither annotations nor images"},
		{COCOConfig{Root: roots["dir"], Images: "val2017", Annotations: "val2017/a.png"}, "invalid character"},
		{COCOConfig{Root: roots["dir"] + "/x", Images: "val2017"}, "coco root"},
	}
	for _, tc := range tests {
		if _, err := OpenCOCO(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", tc.cfg, err, tc.want)
		}
	}
}

// rdFrPoly is a direct port of pycocotools' rleFrPoly (maskApi.c), the
// reference the polygon rasterizer is compared with on real data.
func rdFrPoly(xy []float64, h, w int) RLE {
	k := len(xy) / 2
	const scale = 5.0
	x := make([]int, k+1)
	y := make([]int, k+1)
	for j := 0; j < k; j++ {
		x[j] = int(scale*xy[2*j] + .5)
		y[j] = int(scale*xy[2*j+1] + .5)
	}
	x[k], y[k] = x[0], y[0]
	abs := func(v int) int {
		if v < 0 {
			return -v
		}
		return v
	}
	var u, v []int
	for j := 0; j < k; j++ {
		xs, xe, ys, ye := x[j], x[j+1], y[j], y[j+1]
		dx, dy := abs(xe-xs), abs(ys-ye)
		flip := (dx >= dy && xs > xe) || (dx < dy && ys > ye)
		if flip {
			xs, xe = xe, xs
			ys, ye = ye, ys
		}
		var s float64
		if dx >= dy {
			if dx != 0 {
				s = float64(ye-ys) / float64(dx)
			}
			for d := 0; d <= dx; d++ {
				t := d
				if flip {
					t = dx - d
				}
				u = append(u, t+xs)
				v = append(v, int(float64(ys)+s*float64(t)+.5))
			}
		} else {
			s = float64(xe-xs) / float64(dy)
			for d := 0; d <= dy; d++ {
				t := d
				if flip {
					t = dy - d
				}
				v = append(v, t+ys)
				u = append(u, int(float64(xs)+s*float64(t)+.5))
			}
		}
	}
	var bx, by []int
	for j := 1; j < len(u); j++ {
		if u[j] == u[j-1] {
			continue
		}
		xd := float64(u[j])
		if u[j] >= u[j-1] {
			xd = float64(u[j] - 1)
		}
		xd = (xd+.5)/scale - .5
		if math.Floor(xd) != xd || xd < 0 || xd > float64(w-1) {
			continue
		}
		yd := float64(min(v[j], v[j-1]))
		yd = (yd+.5)/scale - .5
		if yd < 0 {
			yd = 0
		} else if yd > float64(h) {
			yd = float64(h)
		}
		yd = math.Ceil(yd)
		bx = append(bx, int(xd))
		by = append(by, int(yd))
	}
	a := make([]uint32, 0, len(bx)+1)
	for j := range bx {
		a = append(a, uint32(bx[j]*h+by[j]))
	}
	a = append(a, uint32(h*w))
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	var p uint32
	for j := range a {
		t := a[j]
		a[j] -= p
		p = t
	}
	b := []uint32{a[0]}
	for j := 1; j < len(a); {
		if a[j] > 0 {
			b = append(b, a[j])
			j++
		} else {
			j++
			if j < len(a) {
				b[len(b)-1] += a[j]
				j++
			}
		}
	}
	return RLE{H: h, W: w, Counts: b}
}

func TestCOCORealTiny(t *testing.T) {
	root := rdSharedData(t, "coco-tiny.tar.gz")
	d, err := OpenCOCO(COCOConfig{Root: root, Images: "val2017"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != 80 || d.NumInstances() != 815 || len(d.Classes()) != 80 {
		t.Fatalf("coco-tiny val: %d images, %d instances, %d classes; want 80, 815, 80", d.Len(), d.NumInstances(), len(d.Classes()))
	}
	if d.Classes()[0] != "person" || d.CategoryID(79) != 90 {
		t.Errorf("classes[0] %q, id of 79 %d", d.Classes()[0], d.CategoryID(79))
	}
	// Compare masks with the annotations' areas (computed by pycocotools)
	// and with a port of pycocotools' polygon rasterizer.
	var polys, crowd, worse int
	var interSum, unionSum int
	for i := 0; i < d.Len(); i++ {
		s, err := d.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		im := &d.images[i]
		for k, in := range s.Instances {
			if in.Mask == nil || len(in.Mask) != s.Image.H*s.Image.W {
				t.Fatalf("%s instance %d: mask of %d bytes", s.Path, k, len(in.Mask))
			}
			area := 0
			for _, v := range in.Mask {
				area += int(v)
			}
			ann := im.anns[k]
			if ann.rle != nil {
				// (The JSON's area of COCO crowd regions often differs from
				// their masks'; compare with the counts.)
				crowd++
				if area != ann.rle.Area() {
					t.Errorf("%s rle instance %d: mask area %d, counts say %d", s.Path, k, area, ann.rle.Area())
				}
				continue
			}
			polys++
			ref := make([]uint8, len(in.Mask))
			for _, p := range ann.polys {
				m, err := rdFrPoly(p, im.h, im.w).Mask()
				if err != nil {
					t.Fatal(err)
				}
				for q, v := range m {
					ref[q] |= v
				}
			}
			refArea, inter, union := 0, 0, 0
			for q := range ref {
				refArea += int(ref[q])
				inter += int(ref[q] & in.Mask[q])
				union += int(ref[q] | in.Mask[q])
			}
			// The JSON's area of a polygon is the polygon's own area: the
			// pycocotools port must come close.
			if d := math.Abs(float64(refArea) - float64(in.Area)); len(ann.polys) == 1 && d > max(10, 0.05*float64(in.Area)) {
				t.Errorf("%s instance %d: pycocotools port area %d, annotation %v", s.Path, k, refArea, in.Area)
			}
			interSum += inter
			unionSum += union
			if union > 400 && float64(inter)/float64(union) < 0.9 {
				worse++
			}
		}
	}
	if crowd == 0 || polys == 0 {
		t.Errorf("%d crowd, %d polygon instances", crowd, polys)
	}
	iou := float64(interSum) / float64(unionSum)
	t.Logf("%d polygon instances: pixel IoU with pycocotools %.4f; %d larger masks below 0.9", polys, iou, worse)
	if iou < 0.97 || worse > 0 {
		t.Errorf("polygon masks IoU %.4f with pycocotools, %d larger masks below 0.9", iou, worse)
	}
}
