package ckpt

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/peco-dev/peco/core"
)

// LoadReport says what LoadBackbone took from a run: the variables loaded
// (some resized to this backbone's input size), those this backbone has
// that the run lacks (initialised fresh), and the run's it does not use.
type LoadReport struct {
	// Run and Checkpoint name the source.
	Run, Checkpoint string
	// Loaded counts the variables loaded (-1: not checked, the backbone is
	// no core.PatchBackbone); Total is how many the backbone has.
	Loaded, Total int
	// Resized lists "path [old dims] -> [new dims]".
	Resized []string
	// Missing lists the backbone's variables the run does not have.
	Missing []string
	// Unused lists the run's variables under the scope that the backbone
	// does not have.
	Unused []string
}

// String is the report in one or a few lines, for the run's log.
func (r *LoadReport) String() string {
	var b strings.Builder
	if r.Loaded < 0 {
		fmt.Fprintf(&b, "backbone: initialised from %s (%s; not checked: the backbone does not say its input shape)", r.Run, r.Checkpoint)
	} else {
		fmt.Fprintf(&b, "backbone: loaded %d of %d variables from %s (%s)", r.Loaded, r.Total, r.Run, r.Checkpoint)
	}
	if len(r.Resized) > 0 {
		fmt.Fprintf(&b, "\n  resized to this image size: %s", strings.Join(r.Resized, ", "))
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(&b, "\n  not in the run, initialised fresh (%d): %s", len(r.Missing), listSome(r.Missing))
	}
	if len(r.Unused) > 0 {
		fmt.Fprintf(&b, "\n  in the run, not used by this backbone (%d): %s", len(r.Unused), listSome(r.Unused))
	}
	return b.String()
}

// listSome joins the first paths of l.
func listSome(l []string) string {
	const n = 8
	if len(l) <= n {
		return strings.Join(l, ", ")
	}
	return strings.Join(l[:n], ", ") + fmt.Sprintf(", ... (%d more)", len(l)-n)
}

// LoadBackbone initialises backbone bb's variables (under scope to of
// store) from the run's variables under scope from, as LoadAdapted, after
// checking them against the variables bb creates. It refuses, before
// anything trains, a run that has nothing under from (the wrong kind of run:
// a tokenizer run for a backbone), one none of whose variables bb has, and
// one whose variables have other shapes than bb's (beyond what adapter
// resizes), naming both and the shapes; a partial match is loaded and
// reported (LoadReport). Backbones that are not core.PatchBackbone (no known
// input shape to check with) are loaded unchecked, as LoadAdapted.
func (r *Run) LoadBackbone(backend compute.Backend, store *model.Store, bb core.Backbone, from, to string, adapter core.PositionAdapter) (*LoadReport, error) {
	ck, err := r.Weights()
	if err != nil {
		return nil, err
	}
	if err := r.hasScope(ck, from); err != nil {
		return nil, err
	}
	rep := &LoadReport{Run: r.Ref, Checkpoint: r.Checkpoint}
	pb, ok := bb.(core.PatchBackbone)
	if !ok {
		resized, err := r.LoadAdapted(store, from, to, adapter)
		rep.Resized = resized
		rep.Loaded = -1
		return rep, err
	}
	want, err := VariableShapes(backend, to, pb)
	if err != nil {
		return nil, err
	}
	src := strings.TrimSuffix(from, "/")
	dst := strings.TrimSuffix(to, "/")
	have := map[string]shapes.Shape{}
	for p, t := range ck.Variables {
		if strings.HasPrefix(p, src+"/") {
			have[dst+strings.TrimPrefix(p, src)] = t.Shape()
		}
	}
	var mismatched []string
	rep.Total = len(want)
	for p, ws := range want {
		hs, ok := have[p]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, p)
		case hs.Equal(ws):
			rep.Loaded++
		default:
			if adapter != nil {
				srcPath := src + strings.TrimPrefix(p, dst)
				nt, ok, err := adapter.AdaptPosition(srcPath, ck.Variables[srcPath])
				if err != nil {
					return nil, fmt.Errorf("checkpoint %s: %w", r.Checkpoint, err)
				}
				if ok && nt.Shape().Equal(ws) {
					rep.Loaded++
					continue
				}
			}
			mismatched = append(mismatched, fmt.Sprintf("%s: %v in the run, %v here", p, hs.Dimensions, ws.Dimensions))
		}
	}
	for p := range have {
		if _, ok := want[p]; !ok {
			rep.Unused = append(rep.Unused, p)
		}
	}
	sort.Strings(mismatched)
	sort.Strings(rep.Missing)
	sort.Strings(rep.Unused)
	what := fmt.Sprintf("run %s (task %q, checkpoint %s)", r.Ref, r.TaskType(), r.Checkpoint)
	if len(mismatched) > 0 {
		more := ""
		if len(mismatched) > 10 {
			more = fmt.Sprintf("\n  ... (%d more)", len(mismatched)-10)
		}
		return nil, fmt.Errorf("%s does not fit this backbone: %d of its variables have other shapes than this backbone's (configured differently: compare task.backbone in %s/%s with this config):\n  %s%s",
			what, len(mismatched), r.Dir, core.ConfigFile, strings.Join(firstN(mismatched, 10), "\n  "), more)
	}
	if rep.Loaded == 0 {
		return nil, fmt.Errorf("%s: none of its %d variables under %s is one of this backbone's %d (it has e.g. %s; this backbone has e.g. %s): not a run of this backbone",
			what, len(have), from, len(want), listSome(firstN(sortedKeys(have), 3)), listSome(firstN(sortedKeys(want), 3)))
	}
	resized, err := r.LoadAdapted(store, from, to, adapter)
	rep.Resized = resized
	return rep, err
}

// VariableShapes builds bb's forward pass (training mode) once on a scratch
// store, under scope, without computing anything, and returns the variables
// it creates there by path.
func VariableShapes(backend compute.Backend, scope string, bb core.PatchBackbone) (out map[string]shapes.Shape, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("listing the backbone's variables: %v", r)
		}
	}()
	scratch := model.NewStore()
	g := graph.NewGraph(backend, "variable_shapes")
	defer g.Finalize()
	h, w, c := bb.InputShape()
	images := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, 1, h, w, c))
	bb.Forward(scratch.Scope(scope), images, core.ForwardOptions{Training: true})
	out = map[string]shapes.Shape{}
	prefix := strings.TrimSuffix(scope, "/") + "/"
	for v := range scratch.IterVariables() {
		if strings.HasPrefix(v.Path(), prefix) {
			out[v.Path()] = v.Shape()
		}
	}
	return out, nil
}

func firstN(l []string, n int) []string {
	if len(l) > n {
		return l[:n]
	}
	return l
}

func sortedKeys(m map[string]shapes.Shape) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
