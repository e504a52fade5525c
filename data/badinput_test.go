package data

import (
	"image/color"
	"math/rand/v2"
	"strings"
	"testing"
)

// badReader opens one reader over a fixture root, strictly or with SkipBad.
type badReader struct {
	name string
	// files is the reader's fixture with a good image at victim, and what
	// the fault replaces.
	files  func(t *testing.T) map[string][]byte
	victim string
	open   func(root string, skipBad bool) (Dataset, error)
	forms  []string // rdRoots forms to read: dir, tar, tar.gz, tgz
}

// badReaders are the readers whose bad inputs TestBadInputs injects.
func badReaders() []badReader {
	return []badReader{
		{name: "image_folder", files: func(t *testing.T) map[string][]byte {
			good := rdPNG(t, rdSolid(4, 4, color.NRGBA{9, 99, 199, 255}))
			return map[string][]byte{"train/a/1.png": good, "train/a/2.png": good, "train/b/3.png": good}
		}, victim: "train/a/2.png", forms: []string{"dir", "tar.gz"}, // tar.gz: the CIFAR-10 archive reader
			open: func(root string, skip bool) (Dataset, error) {
				return OpenImageFolder(ImageFolderConfig{Root: root, Split: "train", SkipBad: skip})
			}},
		{name: "coco", files: func(t *testing.T) map[string][]byte { return rdCOCOFiles(t, nil) },
			victim: "val2017/b.png", forms: []string{"dir", "tgz"},
			open: func(root string, skip bool) (Dataset, error) {
				return OpenCOCO(COCOConfig{Root: root, Images: "val2017", SkipBad: skip})
			}},
		{name: "ade20k image", files: rdADEFilesT, victim: "images/training/ADE_train_2.jpg", forms: []string{"dir", "tar"},
			open: openADE},
		{name: "ade20k label map", files: rdADEFilesT, victim: "annotations/training/ADE_train_2.png", forms: []string{"dir"},
			open: openADE},
	}
}

func rdADEFilesT(t *testing.T) map[string][]byte { return rdADEFiles(t) }

func openADE(root string, skip bool) (Dataset, error) {
	return OpenADE20k(ADE20kConfig{Root: root, Split: "training", NumClasses: 10, SkipBad: skip})
}

// readAll runs one epoch of ds through a pipeline, as training does, and
// returns the pipeline's first error and its replaced samples.
func readAll(t *testing.T, ds Dataset) ([]SkippedSample, error) {
	t.Helper()
	p, err := NewPipeline(ds, func(s Sample, _ *rand.Rand) (string, error) { return s.Path, nil },
		PipelineConfig{BatchSize: 1, Workers: 2, World: 1})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for _, err := range p.Epoch(0) {
		if err != nil {
			return p.SkippedSamples(), err
		}
	}
	return p.SkippedSamples(), nil
}

// TestBadInputs injects zero-byte, truncated, non-image and bomb files into
// every reader (folders and archives): read strictly, the epoch fails with an
// error naming the file and saying how to skip it; with skip_bad the epoch
// completes and the file is reported with its reason, through the subset and
// cache wrappers a run puts around a dataset.
func TestBadInputs(t *testing.T) {
	faults := []struct {
		name   string
		data   func(good []byte) []byte
		reason string
	}{
		{"zero-byte", func([]byte) []byte { return []byte{} }, "empty file"},
		{"truncated", func(g []byte) []byte { return g[:len(g)/2] }, ""},
		{"not an image", func([]byte) []byte { return []byte("<html>404 not found</html>") }, "not"},
		{"bomb", func([]byte) []byte { return pngHeader(100000, 100000) }, "64 Mpx limit"},
	}
	for _, rd := range badReaders() {
		for _, f := range faults {
			t.Run(rd.name+"/"+f.name, func(t *testing.T) {
				files := rd.files(t)
				files[rd.victim] = f.data(files[rd.victim])
				roots := rdRoots(t, files)
				for _, form := range rd.forms {
					want := strings.TrimSuffix(roots[form], "/") + "/" + rd.victim
					ds, err := rd.open(roots[form], false)
					if err != nil {
						t.Fatalf("%s: strict open: %v", form, err)
					}
					_, err = readAll(t, ds)
					if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "skip_bad: true") ||
						!strings.Contains(err.Error(), f.reason) {
						t.Errorf("%s: strict epoch error %v, want one naming %s, saying %q and how to skip (skip_bad: true)", form, err, want, f.reason)
					}

					ds, err = rd.open(roots[form], true)
					if err != nil {
						t.Fatalf("%s: skip_bad open: %v", form, err)
					}
					wrapped := NewCachedDataset(Subset(ds, ds.Len(), 1), ResizeSpec{}, 0)
					replaced, err := readAll(t, wrapped)
					if err != nil {
						t.Fatalf("%s: skip_bad epoch: %v", form, err)
					}
					rep := SkipReport("data.train", wrapped, replaced)
					if len(rep) != 1 || rep[0].Path != want || rep[0].Split != "data.train" || !strings.Contains(rep[0].Reason, f.reason) {
						t.Errorf("%s: skip report %+v, want %s once with a reason mentioning %q", form, rep, want, f.reason)
					}
				}
			})
		}
	}
}

// TestBadInputsAtOpen injects files that readers find while listing (a
// non-image file, an image without a label map, an annotation pointing at no
// image): strictly, opening fails naming the file and how to skip it; with
// skip_bad the file is left out and reported through the wrappers.
func TestBadInputsAtOpen(t *testing.T) {
	good := rdPNG(t, rdSolid(4, 4, color.NRGBA{1, 2, 3, 255}))
	tests := []struct {
		name  string
		files map[string][]byte
		open  func(root string, skip bool) (Dataset, error)
		path  string // the file reported, relative to the root
		want  string
	}{
		{"image_folder: non-image file", map[string][]byte{"train/a/1.png": good, "train/a/notes.txt": []byte("x")},
			badReaders()[0].open, "train/a/notes.txt", "not an image file"},
		{"ade20k: image without label map", func() map[string][]byte {
			f := rdADEFiles(t)
			delete(f, "annotations/training/ADE_train_3.png")
			return f
		}(), openADE, "images/training/ADE_train_3.jpg", "has no label map"},
		{"coco: annotation of a missing image", rdCOCOFiles(t, func(js map[string]any) {
			anns := js["annotations"].([]any)
			anns[0].(map[string]any)["image_id"] = 999
		}), badReaders()[1].open, "annotations/instances_val2017.json", "image id 999 not in the images list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			roots := rdRoots(t, tc.files)
			for _, form := range []string{"dir", "tar.gz"} {
				want := roots[form] + "/" + tc.path
				_, err := tc.open(roots[form], false)
				if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.want) ||
					!strings.Contains(err.Error(), "skip_bad: true") {
					t.Errorf("%s: strict open error %v, want one naming %s, saying %q and how to skip", form, err, want, tc.want)
				}
				ds, err := tc.open(roots[form], true)
				if err != nil {
					t.Fatalf("%s: skip_bad open: %v", form, err)
				}
				wrapped := NewCachedDataset(Subset(ds, 1, 3), ResizeSpec{}, 0)
				rep := SkipReport("data.val", wrapped)
				if len(rep) != 1 || rep[0].Path != want || rep[0].Split != "data.val" || !strings.Contains(rep[0].Reason, tc.want) {
					t.Errorf("%s: skip report %+v, want %s with %q", form, rep, want, tc.want)
				}
			}
		})
	}
}

// TestFirstGoodSample checks that a bad first training sample
// with skip_bad does not stop the loaders (they probe the first good one),
// and that a split of bad samples only is an error saying so.
func TestFirstGoodSample(t *testing.T) {
	good := rdPNG(t, rdSolid(4, 4, color.NRGBA{1, 2, 3, 255}))
	files := map[string][]byte{"train/a/0.png": {}, "train/a/1.png": good}
	roots := rdRoots(t, files)
	ds, err := OpenImageFolder(ImageFolderConfig{Root: roots["dir"], Split: "train", SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := firstGoodSample(ds)
	if err != nil || s.Image == nil || !strings.HasSuffix(s.Path, "1.png") {
		t.Errorf("firstGoodSample = %v, %v; want 1.png", s.Path, err)
	}
	allBad, err := OpenImageFolder(ImageFolderConfig{Root: rdRoots(t, map[string][]byte{"train/a/0.png": {}})["dir"], Split: "train", SkipBad: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := firstGoodSample(allBad); err == nil || !strings.Contains(err.Error(), "all 1 samples are bad") {
		t.Errorf("all bad: error %v", err)
	}
}
