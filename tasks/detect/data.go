package detect

import (
	"fmt"
	"math/rand/v2"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/peco-dev/peco/data"
	"github.com/peco-dev/peco/metrics"
	"github.com/peco-dev/peco/registry"
)

// valSet is the validation split: the COCO dataset, the images evaluated
// (indices into it) and where its instances JSON lives.
type valSet struct {
	coco *data.COCO
	cfg  data.COCOConfig
	idx  []int
}

// cocoConfig returns the COCOConfig of a dataset spec of type coco.
func cocoConfig(spec registry.Spec[data.Dataset], key string) (data.COCOConfig, error) {
	switch c := spec.Config.(type) {
	case data.COCOConfig:
		return c, nil
	case *data.COCOConfig:
		return *c, nil
	}
	return data.COCOConfig{}, fmt.Errorf("%s: the coco task needs a dataset of type coco, got %q", key, spec.Type)
}

// openCOCO builds a coco dataset spec.
func openCOCO(spec registry.Spec[data.Dataset], key string) (*data.COCO, data.COCOConfig, error) {
	cfg, err := cocoConfig(spec, key)
	if err != nil {
		return nil, cfg, err
	}
	ds, err := spec.Build()
	if err != nil {
		return nil, cfg, fmt.Errorf("%s: %w", key, err)
	}
	c, ok := ds.(*data.COCO)
	if !ok || c.Len() == 0 {
		return nil, cfg, fmt.Errorf("%s: not a non-empty coco dataset", key)
	}
	return c, cfg, nil
}

// openVal opens data.val and picks a seeded subset of max images (0: all),
// kept in dataset order.
func openVal(spec registry.Spec[data.Dataset], max int, seed int64) (*valSet, error) {
	c, cfg, err := openCOCO(spec, "data.val")
	if err != nil {
		return nil, err
	}
	idx := make([]int, c.Len())
	for i := range idx {
		idx[i] = i
	}
	if max > 0 && max < len(idx) {
		r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
		idx = r.Perm(len(idx))[:max]
		slices.Sort(idx)
	}
	return &valSet{coco: c, cfg: cfg, idx: idx}, nil
}

// imageIDs are the COCO ids of the evaluated images.
func (v *valSet) imageIDs() []int64 {
	ids := make([]int64, len(v.idx))
	for i, k := range v.idx {
		ids[i] = v.coco.ImageID(k)
	}
	return ids
}

// groundTruth reads the validation instances JSON (in the folder or
// archive the dataset reads) as the COCO evaluation's ground truth.
func (v *valSet) groundTruth() (*metrics.COCOGroundTruth, error) {
	rel := v.cfg.Annotations
	if rel == "" {
		rel = "annotations/instances_" + path.Base(strings.TrimSuffix(v.cfg.Images, "/")) + ".json"
	}
	gt, err := metrics.ReadCOCOGroundTruth(filepath.Join(v.cfg.Root, rel))
	if err != nil {
		return nil, fmt.Errorf("data.val: %w", err)
	}
	return gt, nil
}

// trainSet concatenates the training datasets, their category indices
// mapped to the validation set's by COCO category id.
type trainSet struct {
	parts  []*data.COCO
	names  []string // display names of the parts
	remap  [][]int  // per part: its category index -> the val's
	starts []int    // first sample of each part
	n      int
	cls    []string // the val's class names
}

// openTrain opens data.train and checks that no training image is a
// validation image (by COCO image id).
func openTrain(specs []registry.Spec[data.Dataset], val *valSet) (*trainSet, error) {
	valIDs := map[int64]bool{}
	for i := range val.coco.Len() {
		valIDs[val.coco.ImageID(i)] = true
	}
	t := &trainSet{cls: val.coco.Classes()}
	seen := map[int64]string{}
	for k, spec := range specs {
		key := fmt.Sprintf("data.train.%d", k)
		c, cfg, err := openCOCO(spec, key)
		if err != nil {
			return nil, err
		}
		remap := make([]int, len(c.Classes()))
		for i := range remap {
			j, ok := val.coco.CategoryIndex(c.CategoryID(i))
			if !ok {
				return nil, fmt.Errorf("%s: category id %d (%s) is not a category of data.val", key, c.CategoryID(i), c.Classes()[i])
			}
			remap[i] = j
		}
		for i := range c.Len() {
			id := c.ImageID(i)
			if valIDs[id] {
				return nil, fmt.Errorf("%s: image id %d is also in data.val", key, id)
			}
			if prev, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s: image id %d is also in %s", key, id, prev)
			}
			seen[id] = key
		}
		t.parts = append(t.parts, c)
		t.names = append(t.names, fmt.Sprintf("%d from %s/%s", c.Len(), cfg.Root, cfg.Images))
		t.remap = append(t.remap, remap)
		t.starts = append(t.starts, t.n)
		t.n += c.Len()
	}
	return t, nil
}

// Len implements data.Dataset.
func (t *trainSet) Len() int { return t.n }

// Classes implements data.Dataset: the validation set's class names.
func (t *trainSet) Classes() []string { return slices.Clone(t.cls) }

// Sample implements data.Dataset, with categories as the val's indices.
func (t *trainSet) Sample(i int) (data.Sample, error) {
	k := len(t.starts) - 1
	for t.starts[k] > i {
		k--
	}
	s, err := t.parts[k].Sample(i - t.starts[k])
	if err != nil {
		return s, err
	}
	for j := range s.Instances {
		s.Instances[j].Category = t.remap[k][s.Instances[j].Category]
	}
	return s, nil
}

// describe names the parts for the log.
func (t *trainSet) describe() string { return strings.Join(t.names, " + ") }

// repeated is a dataset seen n times per epoch.
type repeated struct {
	data.Dataset
	n int
}

// Len implements data.Dataset.
func (r *repeated) Len() int { return r.n * r.Dataset.Len() }

// Sample implements data.Dataset.
func (r *repeated) Sample(i int) (data.Sample, error) { return r.Dataset.Sample(i % r.Dataset.Len()) }
