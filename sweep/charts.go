package sweep

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// ChartWidth and ChartHeight are the size in pixels of the PNG charts.
const (
	ChartWidth  = 800
	ChartHeight = 480
)

var (
	chartBackground = color.RGBA{255, 255, 255, 255}
	chartInk        = color.RGBA{30, 30, 30, 255}
	chartGrid       = color.RGBA{225, 225, 225, 255}
	chartMuted      = color.RGBA{110, 110, 110, 255}
	// palette: a colour per variant (row order), the "tab10" colours.
	palette = []color.RGBA{
		{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
		{188, 189, 34, 255}, {23, 190, 207, 255},
	}
)

func paletteColor(i int) color.RGBA { return palette[i%len(palette)] }

// pale mixes c with white: f = 0 is c, 1 is white.
func pale(c color.RGBA, f float64) color.RGBA {
	mix := func(v uint8) uint8 { return uint8(float64(v) + (255-float64(v))*f + 0.5) }
	return color.RGBA{mix(c.R), mix(c.G), mix(c.B), 255}
}

// canvas is an RGBA image with the few drawing primitives the charts need.
type canvas struct {
	img  *image.RGBA
	face font.Face
}

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h)), face: basicfont.Face7x13}
	draw.Draw(c.img, c.img.Bounds(), image.NewUniform(chartBackground), image.Point{}, draw.Src)
	return c
}

// rect fills [x0,x1)x[y0,y1) (corners in any order).
func (c *canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

// line draws a segment width pixels thick.
func (c *canvas) line(x0, y0, x1, y1 float64, width int, col color.Color) {
	n := int(math.Ceil(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))))
	if n == 0 {
		n = 1
	}
	lo := -(width - 1) / 2
	for i := 0; i <= n; i++ {
		f := float64(i) / float64(n)
		x := int(math.Round(x0 + (x1-x0)*f))
		y := int(math.Round(y0 + (y1-y0)*f))
		c.rect(x+lo, y+lo, x+lo+width, y+lo+width, col)
	}
}

// textWidth is the width in pixels of s in the chart font.
func (c *canvas) textWidth(s string) int { return font.MeasureString(c.face, s).Round() }

// text draws s with its baseline at y; align -1: x is the left end, 0: the
// centre, 1: the right end.
func (c *canvas) text(x, y int, s string, align int, col color.Color) {
	s = asciiLabel(s)
	w := c.textWidth(s)
	switch align {
	case 0:
		x -= w / 2
	case 1:
		x -= w
	}
	d := &font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: c.face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// fit shortens s (with "..") to at most px pixels.
func (c *canvas) fit(s string, px int) string {
	s = asciiLabel(s)
	if c.textWidth(s) <= px {
		return s
	}
	r := []rune(s)
	for len(r) > 1 && c.textWidth(string(r)+"..") > px {
		r = r[:len(r)-1]
	}
	return string(r) + ".."
}

// asciiLabel replaces what the 7x13 font (ASCII only) cannot draw.
func asciiLabel(s string) string {
	s = strings.NewReplacer("±", "+-", "—", "-", "–", "-", "↓", "(lower)").Replace(s)
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func (c *canvas) png(path string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.img); err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return writeResultFile(path, buf.Bytes())
}

// niceTicks returns ticks covering [lo, hi], about n of them, at 1, 2 or 5
// times a power of ten, and that step.
func niceTicks(lo, hi float64, n int) (ticks []float64, step float64) {
	if !(hi > lo) {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / p; {
	case f <= 1:
		step = p
	case f <= 2:
		step = 2 * p
	case f <= 5:
		step = 5 * p
	default:
		step = 10 * p
	}
	for k := math.Ceil(lo/step - 1e-9); k*step <= hi+step*1e-9; k++ {
		v := k * step
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, v)
	}
	return ticks, step
}

// expandToTicks widens [lo, hi] to whole steps of its nice ticks, so that
// both ends of an axis are labelled ticks.
func expandToTicks(lo, hi float64, n int) (float64, float64) {
	for range 4 {
		_, step := niceTicks(lo, hi, n)
		l, h := math.Floor(lo/step+1e-9)*step, math.Ceil(hi/step-1e-9)*step
		if _, again := niceTicks(l, h, n); again == step || (l == lo && h == hi) {
			return l, h
		}
		lo, hi = l, h
	}
	return lo, hi
}

// tickLabel formats a tick value with the decimals its step needs.
func tickLabel(v, step float64) string {
	d := 0
	if step < 1 {
		d = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	if math.Abs(v) >= 1e6 && d == 0 {
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

// plotArea maps data coordinates to pixels inside the chart's frame.
type plotArea struct {
	x0, y0, x1, y1         int // pixel frame: left, top, right, bottom
	xmin, xmax, ymin, ymax float64
}

func (p *plotArea) px(x float64) float64 {
	return float64(p.x0) + (x-p.xmin)/(p.xmax-p.xmin)*float64(p.x1-p.x0)
}

func (p *plotArea) py(y float64) float64 {
	return float64(p.y1) - (y-p.ymin)/(p.ymax-p.ymin)*float64(p.y1-p.y0)
}

// yAxis draws horizontal grid lines with tick labels, and the frame's left
// and bottom edges.
func (c *canvas) yAxis(p *plotArea) {
	ticks, step := niceTicks(p.ymin, p.ymax, 6)
	for _, v := range ticks {
		y := int(math.Round(p.py(v)))
		c.rect(p.x0, y, p.x1, y+1, chartGrid)
		c.rect(p.x0-5, y, p.x0, y+1, chartInk)
		c.text(p.x0-8, y+4, tickLabel(v, step), 1, chartInk)
	}
	c.rect(p.x0, p.y0, p.x0+1, p.y1+1, chartInk)
	c.rect(p.x0, p.y1, p.x1, p.y1+1, chartInk)
}

func (c *canvas) title(s string) {
	c.text(ChartWidth/2, 24, c.fit(s, ChartWidth-20), 0, chartInk)
}

// BarChart draws metric (an index into t.Metrics) across the table's
// variants as a PNG at path (ChartWidth x ChartHeight): a bar per variant
// at its mean with an error bar of ± one standard deviation, the mean
// written above it, the variant's name under it ("n/a" for a missing cell).
// The y axis starts at 0 when the values are non-negative and not far from
// it (the lowest at most half the highest), or there is a single bar, else it
// zooms on the values (bars then start at the axis' bottom).
func BarChart(path string, t *Table, metric int) error {
	if metric < 0 || metric >= len(t.Metrics) {
		return fmt.Errorf("bar chart %s: no metric %d (the table has %d)", path, metric, len(t.Metrics))
	}
	m := t.Metrics[metric]
	c := newCanvas(ChartWidth, ChartHeight)
	title := m.Name
	if m.Lower {
		title += " (lower is better)"
	}
	if t.Sweep != "" {
		title = t.Sweep + ": " + title
	}
	c.title(title)

	lo, hi := math.Inf(1), math.Inf(-1)
	bars := 0
	for _, r := range t.Rows {
		cell := r.Cells[metric]
		if cell.N == 0 {
			continue
		}
		bars++
		lo = math.Min(lo, cell.Mean-cell.Std)
		hi = math.Max(hi, cell.Mean+cell.Std)
	}
	p := &plotArea{x0: 80, y0: 50, x1: ChartWidth - 30, y1: ChartHeight - 60}
	if math.IsInf(lo, 1) {
		p.ymin, p.ymax = 0, 1
		c.yAxis(p)
		c.text((p.x0+p.x1)/2, (p.y0+p.y1)/2, "no data", 0, chartMuted)
		return c.png(path)
	}
	switch {
	case lo >= 0 && (lo <= 0.5*hi || bars < 2 || lo == hi):
		lo = 0
	case hi <= 0 && (hi >= 0.5*lo || bars < 2 || lo == hi):
		hi = 0
	default:
		pad := 0.15 * (hi - lo)
		if pad == 0 {
			pad = 0.1 * math.Max(math.Abs(hi), 1)
		}
		lo, hi = lo-pad, hi+pad
	}
	if hi == lo {
		hi = lo + 1
	}
	hi += 0.08 * (hi - lo) // room for the value labels
	p.ymin, p.ymax = expandToTicks(lo, hi, 6)
	c.yAxis(p)

	n := len(t.Rows)
	slot := float64(p.x1-p.x0) / float64(max(n, 1))
	barW := math.Min(0.6*slot, 120)
	base := p.py(math.Max(p.ymin, math.Min(0, p.ymax)))
	for i, r := range t.Rows {
		cell := r.Cells[metric]
		cx := float64(p.x0) + slot*(float64(i)+0.5)
		c.text(int(cx), p.y1+18, c.fit(r.Variant, int(slot)-4), 0, chartInk)
		if cell.N == 0 {
			c.text(int(cx), p.y1-6, "n/a", 0, chartMuted)
			continue
		}
		col := paletteColor(i)
		top := p.py(cell.Mean)
		c.rect(int(cx-barW/2), int(math.Round(top)), int(cx+barW/2), int(math.Round(base)), col)
		label := fmt.Sprintf("%.*f", cellDecimals(cell.Mean), cell.Mean)
		labelY := top
		if cell.N > 1 && cell.Std > 0 {
			y0, y1 := p.py(cell.Mean-cell.Std), p.py(cell.Mean+cell.Std)
			capW := math.Max(barW/4, 4)
			c.line(cx, y0, cx, y1, 2, chartInk)
			c.line(cx-capW, y0, cx+capW, y0, 2, chartInk)
			c.line(cx-capW, y1, cx+capW, y1, 2, chartInk)
			labelY = math.Min(labelY, y1)
		}
		c.text(int(cx), int(labelY)-6, label, 0, chartInk)
		c.text(int(cx), p.y1+34, fmt.Sprintf("n=%d", cell.N), 0, chartMuted)
	}
	return c.png(path)
}

// curveGroup is the runs drawn as one line of a curves chart.
type curveGroup struct {
	name  string
	order int // position in variantOrder, or len(variantOrder)
	runs  [][][2]float64
}

// CurvesChart draws the curve key of the completed runs of stage as a PNG at
// path (ChartWidth x ChartHeight), with a legend. Runs are grouped by their
// Variant (a stage shared by several variants, with no Variant, is one group
// named after them all, "a+b"), ordered as variantOrder, then by name. Each
// run's own curve is drawn thin in a pale version of its group's colour and
// the group's mean over seeds bold, at the steps present in all of its runs
// (a group with one run is just that run's curve).
func CurvesChart(path string, sums []RunSummary, stage, key string, variantOrder []string) error {
	pos := map[string]int{}
	for i, v := range variantOrder {
		if _, ok := pos[v]; !ok {
			pos[v] = i
		}
	}
	groups := map[string]*curveGroup{}
	for i := range sums {
		s := &sums[i]
		pts := s.Curves[key]
		if s.Stage != stage || !s.completed() || len(pts) == 0 {
			continue
		}
		name := s.Variant
		vs := s.variants()
		if name == "" {
			name = strings.Join(vs, "+")
		}
		if name == "" {
			name = "(shared)"
		}
		g := groups[name]
		if g == nil {
			g = &curveGroup{name: name, order: len(variantOrder)}
			cands := vs
			if s.Variant != "" {
				cands = []string{s.Variant}
			}
			for _, v := range cands {
				if p, ok := pos[v]; ok && p < g.order {
					g.order = p
				}
			}
			groups[name] = g
		}
		g.runs = append(g.runs, cleanCurve(pts))
	}
	list := make([]*curveGroup, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].order != list[j].order {
			return list[i].order < list[j].order
		}
		return list[i].name < list[j].name
	})

	c := newCanvas(ChartWidth, ChartHeight)
	c.title(stage + " " + key)
	p := &plotArea{x0: 80, y0: 50, x1: ChartWidth - 190, y1: ChartHeight - 60}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, g := range list {
		for _, run := range g.runs {
			for _, pt := range run {
				xmin, xmax = math.Min(xmin, pt[0]), math.Max(xmax, pt[0])
				ymin, ymax = math.Min(ymin, pt[1]), math.Max(ymax, pt[1])
			}
		}
	}
	if len(list) == 0 || math.IsInf(xmin, 1) {
		p.ymin, p.ymax = 0, 1
		c.yAxis(p)
		c.text((p.x0+p.x1)/2, (p.y0+p.y1)/2, "no data", 0, chartMuted)
		return c.png(path)
	}
	if xmax == xmin {
		xmin, xmax = xmin-1, xmax+1
	}
	if ymax == ymin {
		d := 0.1 * math.Max(math.Abs(ymax), 1)
		ymin, ymax = ymin-d, ymax+d
	}
	pad := 0.05 * (ymax - ymin)
	lo, hi := ymin-pad, ymax+pad
	if ymin >= 0 && lo < 0 {
		lo = 0 // do not pad a non-negative curve below zero
	}
	p.ymin, p.ymax = expandToTicks(lo, hi, 6)
	p.xmin, p.xmax = xmin, xmax
	c.yAxis(p)
	xt, xstep := niceTicks(xmin, xmax, 8)
	for _, v := range xt {
		x := int(math.Round(p.px(v)))
		c.rect(x, p.y1, x+1, p.y1+5, chartInk)
		c.text(x, p.y1+18, tickLabel(v, xstep), 0, chartInk)
	}
	c.text((p.x0+p.x1)/2, p.y1+38, "step", 0, chartMuted)

	for gi, g := range list {
		col := paletteColor(gi)
		if len(g.runs) > 1 {
			for _, run := range g.runs {
				c.polyline(p, run, 1, pale(col, 0.6))
			}
		}
		c.polyline(p, meanCurve(g.runs), 2, col)
	}

	// legend, right of the plot
	lx, ly := p.x1+15, p.y0+10
	for gi, g := range list {
		col := paletteColor(gi)
		c.rect(lx, ly-5, lx+18, ly-2, col)
		label := g.name
		if len(g.runs) > 1 {
			label += fmt.Sprintf(" (n=%d)", len(g.runs))
		}
		c.text(lx+24, ly, c.fit(label, ChartWidth-lx-30), -1, chartInk)
		ly += 18
		if ly > p.y1 {
			break
		}
	}
	return c.png(path)
}

// polyline draws a curve (a lone point as a small square).
func (c *canvas) polyline(p *plotArea, pts [][2]float64, width int, col color.Color) {
	if len(pts) == 1 {
		x, y := int(p.px(pts[0][0])), int(p.py(pts[0][1]))
		c.rect(x-2, y-2, x+3, y+3, col)
		return
	}
	for i := 1; i < len(pts); i++ {
		c.line(p.px(pts[i-1][0]), p.py(pts[i-1][1]), p.px(pts[i][0]), p.py(pts[i][1]), width, col)
	}
}

// cleanCurve sorts a curve by step, keeps the last value logged at a step
// (a resumed run may log one twice) and drops non-finite points.
func cleanCurve(pts [][2]float64) [][2]float64 {
	at := map[float64]float64{}
	for _, pt := range pts {
		if math.IsNaN(pt[0]) || math.IsNaN(pt[1]) || math.IsInf(pt[0], 0) || math.IsInf(pt[1], 0) {
			continue
		}
		at[pt[0]] = pt[1]
	}
	out := make([][2]float64, 0, len(at))
	for x, y := range at {
		out = append(out, [2]float64{x, y})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// meanCurve averages cleaned curves at the steps present in all of them.
func meanCurve(runs [][][2]float64) [][2]float64 {
	if len(runs) == 1 {
		return runs[0]
	}
	count := map[float64]int{}
	sum := map[float64]float64{}
	for _, run := range runs {
		for _, pt := range run {
			count[pt[0]]++
			sum[pt[0]] += pt[1]
		}
	}
	var out [][2]float64
	for x, n := range count {
		if n == len(runs) {
			out = append(out, [2]float64{x, sum[x] / float64(n)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}
