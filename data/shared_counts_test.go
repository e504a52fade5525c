package data

import "testing"

// TestSharedDataCounts checks the sample counts, classes and labels of every
// real data set in ../shared/data (skipped with a message when absent).
func TestSharedDataCounts(t *testing.T) {
	for _, tc := range []struct {
		name, archive, split string
		n, classes           int
	}{
		{"cifar10 train", "cifar10.tar.gz", "train", 50000, 10},
		{"cifar10 test", "cifar10.tar.gz", "test", 10000, 10},
		{"imagenette train", "imagenette-160.tar.gz", "train", 9469, 10},
		{"imagenette val", "imagenette-160.tar.gz", "val", 3925, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := OpenImageFolder(ImageFolderConfig{Root: rdSharedData(t, tc.archive), Split: tc.split})
			if err != nil {
				t.Fatal(err)
			}
			if d.Len() != tc.n || len(d.Classes()) != tc.classes {
				t.Fatalf("%d samples in %d classes, want %d in %d", d.Len(), len(d.Classes()), tc.n, tc.classes)
			}
			if tc.archive == "imagenette-160.tar.gz" && d.Classes()[0] != "n01440764" {
				t.Errorf("classes must be sorted WordNet ids, first is %q", d.Classes()[0])
			}
			for _, i := range []int{0, d.Len() / 2, d.Len() - 1} {
				s, err := d.Sample(i)
				if err != nil {
					t.Fatal(err)
				}
				if s.Label < 0 || s.Label >= tc.classes || s.Image.C != 3 {
					t.Errorf("sample %d: label %d, %v", i, s.Label, s.Image)
				}
			}
		})
	}
	for _, tc := range []struct {
		archive, images    string
		n, instances, cats int
	}{
		{"coco-tiny.tar.gz", "train2017", 80, 705, 80},
		{"coco-tiny.tar.gz", "val2017", 80, 815, 80},
		{"coco128.tar.gz", "val2017", 128, 939, 71},
	} {
		t.Run(tc.archive+" "+tc.images, func(t *testing.T) {
			d, err := OpenCOCO(COCOConfig{Root: rdSharedData(t, tc.archive), Images: tc.images})
			if err != nil {
				t.Fatal(err)
			}
			cats := map[int]bool{}
			for i := 0; i < d.Len(); i++ {
				for _, a := range d.images[i].anns {
					cats[a.cat] = true
				}
			}
			if d.Len() != tc.n || d.NumInstances() != tc.instances || len(cats) != tc.cats {
				t.Fatalf("%d images, %d instances, %d categories used; want %d, %d, %d", d.Len(), d.NumInstances(), len(cats), tc.n, tc.instances, tc.cats)
			}
		})
	}
	for _, tc := range []struct {
		split string
		n     int
	}{{"training", 367}, {"validation", 101}} {
		t.Run("camvid "+tc.split, func(t *testing.T) {
			d, err := OpenADE20k(ADE20kConfig{Root: rdSharedData(t, "camvid-ade.tar.gz"), Split: tc.split, NumClasses: 11})
			if err != nil {
				t.Fatal(err)
			}
			if d.Len() != tc.n {
				t.Fatalf("%d samples, want %d", d.Len(), tc.n)
			}
			s, err := d.Sample(d.Len() - 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range s.LabelMap {
				if v > 11 {
					t.Fatalf("label %d outside 0..11", v)
				}
			}
		})
	}
}
