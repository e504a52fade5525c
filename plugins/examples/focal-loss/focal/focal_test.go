package focal

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// reference is the float64 reference: the loss and, by the chain rule
// through the full softmax Jacobian, d loss / d logits.
func reference(logits, targets [][]float64, g float64, weights []float64) (float64, [][]float64) {
	n := len(logits)
	var sum, wsum float64
	grad := make([][]float64, n)
	ws := make([]float64, n)
	for i, z := range logits {
		mx := math.Inf(-1)
		for _, v := range z {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range z {
			s += math.Exp(v - mx)
		}
		k := len(z)
		p, logp, dp := make([]float64, k), make([]float64, k), make([]float64, k)
		var l float64
		for j, v := range z {
			logp[j] = v - mx - math.Log(s)
			p[j] = math.Exp(logp[j])
			q := 1 - p[j]
			l -= targets[i][j] * math.Pow(q, g) * logp[j]
			// dL/dp_j = -t_j [ -g q^(g-1) log p_j + q^g / p_j ]
			dp[j] = -targets[i][j] * math.Pow(q, g) / p[j]
			if g != 0 {
				dp[j] += targets[i][j] * g * math.Pow(q, g-1) * logp[j]
			}
		}
		grad[i] = make([]float64, k)
		for j := range z {
			for kk := range z {
				delta := 0.0
				if kk == j {
					delta = 1
				}
				grad[i][j] += dp[kk] * p[kk] * (delta - p[j])
			}
		}
		ws[i] = 1
		if weights != nil {
			ws[i] = weights[i]
		}
		sum += ws[i] * l
		wsum += ws[i]
	}
	den := float64(n)
	if weights != nil {
		den = math.Max(wsum, 1)
	}
	for i := range grad {
		for j := range grad[i] {
			grad[i][j] *= ws[i] / den
		}
	}
	return sum / den, grad
}

// crossEntropy is the plain softmax cross-entropy (mean over rows) and its
// gradient (p - t) / N.
func crossEntropy(logits, targets [][]float64) (float64, [][]float64) {
	var sum float64
	grad := make([][]float64, len(logits))
	for i, z := range logits {
		var s float64
		for _, v := range z {
			s += math.Exp(v)
		}
		grad[i] = make([]float64, len(z))
		for j, v := range z {
			sum -= targets[i][j] * (v - math.Log(s))
			grad[i][j] = (math.Exp(v)/s - targets[i][j]) / float64(len(logits))
		}
	}
	return sum / float64(len(logits)), grad
}

func oneHot(labels []int32, k int, eps float64) [][]float64 {
	t := make([][]float64, len(labels))
	for i, c := range labels {
		t[i] = make([]float64, k)
		for j := range t[i] {
			t[i][j] = eps / float64(k)
		}
		t[i][c] += 1 - eps
	}
	return t
}

// batch is one loss call's inputs with their float64 views.
type batch struct {
	logits  *sdk.Tensor
	labels  []int32
	targets *sdk.Tensor // soft targets instead of labels, when set
	weights []float32
}

// randomBatch draws logits on a grid of 2^-8 (so that z +- 2^-12 is exact
// in float32 for finite differences).
func randomBatch(r *rand.Rand, n, k int, scale float64) batch {
	z := make([]float32, n*k)
	for i := range z {
		z[i] = float32(math.Round(scale*r.NormFloat64()*256) / 256)
	}
	lb := make([]int32, n)
	for i := range lb {
		lb[i] = int32(r.IntN(k))
	}
	return batch{logits: sdk.NewFloat32(z, n, k), labels: lb}
}

func (b batch) request(grad bool) *sdk.LossRequest {
	req := &sdk.LossRequest{Inputs: map[string]*sdk.Tensor{"logits": b.logits}, Training: true}
	if b.targets != nil {
		req.Inputs["targets"] = b.targets
	} else {
		req.Inputs["labels"] = sdk.NewInt32(b.labels, len(b.labels))
	}
	if b.weights != nil {
		req.Inputs["weights"] = sdk.NewFloat32(b.weights, len(b.weights))
	}
	if grad {
		req.GradFor = []string{"logits"}
	}
	return req
}

func (b batch) rows() [][]float64 {
	n, k := b.logits.Shape[0], b.logits.Shape[1]
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, k)
		for j := range out[i] {
			out[i][j] = float64(b.logits.F32[i*k+j])
		}
	}
	return out
}

func (b batch) targetRows(eps float64) [][]float64 {
	if b.targets == nil {
		return oneHot(b.labels, b.logits.Shape[1], eps)
	}
	k := b.logits.Shape[1]
	out := make([][]float64, b.logits.Shape[0])
	for i := range out {
		out[i] = make([]float64, k)
		for j := range out[i] {
			out[i][j] = float64(b.targets.F32[i*k+j])
		}
	}
	return out
}

func (b batch) weights64() []float64 {
	if b.weights == nil {
		return nil
	}
	w := make([]float64, len(b.weights))
	for i, v := range b.weights {
		w[i] = float64(v)
	}
	return w
}

func configured(t *testing.T, gamma, eps float64) *Loss {
	t.Helper()
	l := &Loss{}
	if err := l.Configure(sdk.Config{"gamma": gamma, "label_smoothing": eps}, 1); err != nil {
		t.Fatal(err)
	}
	return l
}

func compute(t *testing.T, l *Loss, req *sdk.LossRequest) (float64, []float32) {
	t.Helper()
	res, err := l.Compute(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	g := res.Grads["logits"]
	if len(req.GradFor) == 0 {
		if g != nil {
			t.Errorf("gradient returned without being asked")
		}
		return res.Loss, nil
	}
	if g == nil {
		t.Fatal("no gradient for logits")
	}
	if g.DType != sdk.Float32 || fmt.Sprint(g.Shape) != fmt.Sprint(req.Inputs["logits"].Shape) || g.Check() != nil {
		t.Fatalf("gradient %s, want float32 %v", g, req.Inputs["logits"].Shape)
	}
	return res.Loss, g.F32
}

// near reports |got-want| <= tol*|want| + abs.
func near(got, want, tol, abs float64) bool {
	return math.Abs(got-want) <= tol*math.Abs(want)+abs
}

type variant struct {
	name    string
	eps     float64
	weights []float32
	soft    bool
}

var variants = []variant{
	{"labels", 0, nil, false},
	{"labels smoothing 0.1", 0.1, nil, false},
	{"weighted rows", 0.1, []float32{1, 0, 1, 0.5, 2}, false},
	{"weights summing below 1", 0, []float32{0.25, 0, 0, 0.25, 0}, false},
	{"all weights 0", 0, []float32{0, 0, 0, 0, 0}, false},
	{"soft targets", 0.2, nil, true},
}

var gammas = []float64{0, 0.5, 1, 2, 3.7}

func (v variant) batch(r *rand.Rand) batch {
	b := randomBatch(r, 5, 4, 2)
	b.weights = v.weights
	if v.soft {
		t := make([]float32, 0, 20)
		for _, row := range oneHot(b.labels, 4, v.eps) {
			for _, x := range row {
				t = append(t, float32(x))
			}
		}
		b.targets = sdk.NewFloat32(t, 5, 4)
	}
	return b
}

func TestComputeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for _, g := range gammas {
		for _, v := range variants {
			b := v.batch(r)
			t.Run(fmt.Sprintf("gamma %v %s", g, v.name), func(t *testing.T) {
				l := configured(t, g, v.eps)
				if v.soft {
					l = configured(t, g, 0.7) // soft targets are used as given
				}
				loss, grad := compute(t, l, b.request(true))
				want, wantGrad := reference(b.rows(), b.targetRows(v.eps), g, b.weights64())
				if !near(loss, want, 1e-12, 1e-12) {
					t.Errorf("loss %v, want %v", loss, want)
				}
				k := b.logits.Shape[1]
				for i := range wantGrad {
					for j := range wantGrad[i] {
						if got := float64(grad[i*k+j]); !near(got, wantGrad[i][j], 1e-6, 1e-8) {
							t.Errorf("d loss/d logits[%d, %d] = %v, want %v", i, j, got, wantGrad[i][j])
						}
					}
				}
				noGrad, _ := compute(t, l, b.request(false))
				if noGrad != loss {
					t.Errorf("loss without gradient %v, with %v", noGrad, loss)
				}
			})
		}
	}
}

// TestGradientFiniteDifferences checks the analytic gradient against central
// finite differences of the plugin's own loss.
func TestGradientFiniteDifferences(t *testing.T) {
	const h = 1.0 / 4096 // exact in float32 on the logits' grid
	r := rand.New(rand.NewPCG(8, 13))
	for _, g := range gammas {
		for _, v := range variants {
			b := v.batch(r)
			t.Run(fmt.Sprintf("gamma %v %s", g, v.name), func(t *testing.T) {
				l := configured(t, g, v.eps)
				_, grad := compute(t, l, b.request(true))
				for e := range b.logits.F32 {
					z := b.logits.F32[e]
					b.logits.F32[e] = z + h
					up, _ := compute(t, l, b.request(false))
					b.logits.F32[e] = z - h
					down, _ := compute(t, l, b.request(false))
					b.logits.F32[e] = z
					if fd := (up - down) / (2 * h); !near(float64(grad[e]), fd, 1e-3, 1e-6) {
						t.Errorf("logits element %d: analytic %v, finite differences %v", e, grad[e], fd)
					}
				}
			})
		}
	}
}

func TestGammaZeroIsCrossEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, scale := range []float64{0.1, 1, 5} {
		b := randomBatch(r, 7, 6, scale)
		loss, grad := compute(t, configured(t, 0, 0), b.request(true))
		want, wantGrad := crossEntropy(b.rows(), b.targetRows(0))
		if !near(loss, want, 1e-12, 1e-12) {
			t.Errorf("scale %v: focal with gamma 0 = %v, cross-entropy %v", scale, loss, want)
		}
		for i := range wantGrad {
			for j := range wantGrad[i] {
				if got := float64(grad[i*6+j]); !near(got, wantGrad[i][j], 1e-6, 1e-8) {
					t.Errorf("scale %v: gradient [%d, %d] = %v, cross-entropy's %v", scale, i, j, got, wantGrad[i][j])
				}
			}
		}
	}
}

// TestSaturatedRows: rows whose softmax is 1 up to float64 (1-p = 0 exactly
// for the 1000 logit, about 1e-87 for the 200 one) give finite values for
// every gamma, including gamma < 1 where (1-p)^(gamma-1) is infinite.
func TestSaturatedRows(t *testing.T) {
	b := batch{logits: sdk.NewFloat32([]float32{1000, 0, -3, 200, 0, 1, 0, 1000, 1, 0, 200, 3}, 4, 3),
		labels: []int32{0, 0, 0, 0}}
	for _, g := range []float64{0, 0.25, 0.5, 1, 2} {
		loss, grad := compute(t, configured(t, g, 0), b.request(true))
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("gamma %v: loss %v", g, loss)
		}
		// Rows 0 and 1 are classified with certainty: loss and gradient
		// ~0. Rows 2 and 3 are certain of another class: -log p = 1000
		// and 200, gradient (p - t)/N (1-p_label = 1 to float64).
		if want := (1000.0 + 200) / 4; !near(loss, want, 1e-12, 0) {
			t.Errorf("gamma %v: loss %v, want %v", g, loss, want)
		}
		want := []float64{0, 0, 0, 0, 0, 0, -0.25, 0.25, 0, -0.25, 0.25, 0}
		for e, w := range want {
			if !near(float64(grad[e]), w, 1e-6, 1e-6) {
				t.Errorf("gamma %v: gradient element %d = %v, want %v", g, e, grad[e], w)
			}
		}
	}
}

func TestInfoAndConfigure(t *testing.T) {
	info := (&Loss{}).Info()
	if info.Name != "focal" || info.Version != "1.0.0" || info.Doc == "" {
		t.Errorf("info %+v", info)
	}
	defaults := map[string]any{}
	for _, f := range info.Schema {
		if f.Type != sdk.FieldFloat {
			t.Errorf("%s: type %v, want float", f.Key, f.Type)
		}
		defaults[f.Key] = f.Default
	}
	if fmt.Sprint(defaults) != "map[gamma:2 label_smoothing:0]" {
		t.Errorf("schema defaults %v", defaults)
	}
	if kind, err := sdk.KindOf(&Loss{}); err != nil || kind != pb.Kind_KIND_LOSS {
		t.Errorf("kind %v, %v", kind, err)
	}

	// An empty config takes the defaults: gamma 2, no smoothing.
	l := &Loss{}
	if err := l.Configure(sdk.Config{}, 0); err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(4, 4)), 3, 5, 1)
	got, _ := compute(t, l, b.request(false))
	want, _ := reference(b.rows(), b.targetRows(0), 2, nil)
	if !near(got, want, 1e-12, 1e-12) {
		t.Errorf("defaults: loss %v, want gamma 2's %v", got, want)
	}

	for _, tc := range []struct {
		cfg  sdk.Config
		want string
	}{
		{sdk.Config{"gamma": -0.5}, "gamma must be a finite number >= 0, got -0.5"},
		{sdk.Config{"gamma": math.NaN()}, "gamma must be a finite number >= 0, got NaN"},
		{sdk.Config{"gamma": math.Inf(1)}, "gamma must be a finite number >= 0, got +Inf"},
		{sdk.Config{"gamma": "two"}, "gamma must be a number, got string two"},
		{sdk.Config{"label_smoothing": 1.0}, "label_smoothing must be in [0, 1), got 1"},
		{sdk.Config{"label_smoothing": -0.1}, "label_smoothing must be in [0, 1), got -0.1"},
		{sdk.Config{"label_smoothing": true}, "label_smoothing must be a number"},
	} {
		l := configured(t, 1, 0.1)
		err := l.Configure(tc.cfg, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if l.gamma != 1 || l.labelSmoothing != 0.1 {
			t.Errorf("%v: a refused config changed the loss: gamma %v, label_smoothing %v", tc.cfg, l.gamma, l.labelSmoothing)
		}
	}
}

func TestComputeErrors(t *testing.T) {
	good := func() *sdk.LossRequest {
		return &sdk.LossRequest{Inputs: map[string]*sdk.Tensor{
			"logits": sdk.NewFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
			"labels": sdk.NewInt32([]int32{0, 2}, 2),
		}, GradFor: []string{"logits"}}
	}
	nan := float32(math.NaN())
	for _, tc := range []struct {
		name   string
		change func(r *sdk.LossRequest)
		want   string
	}{
		{"missing logits", func(r *sdk.LossRequest) { delete(r.Inputs, "logits") }, `missing input "logits"`},
		{"nil logits", func(r *sdk.LossRequest) { r.Inputs["logits"] = nil }, `missing input "logits"`},
		{"float64 logits", func(r *sdk.LossRequest) {
			r.Inputs["logits"] = &sdk.Tensor{DType: sdk.Float64, Shape: []int{2, 3}, F64: make([]float64, 6)}
		}, `input "logits": got float64[2 3], want float32 [N, classes]`},
		{"rank-1 logits", func(r *sdk.LossRequest) { r.Inputs["logits"] = sdk.NewFloat32(make([]float32, 6), 6) },
			`input "logits": got float32[6]`},
		{"logits short of data", func(r *sdk.LossRequest) { r.Inputs["logits"] = sdk.NewFloat32(make([]float32, 5), 2, 3) },
			`input "logits": tensor float32[2 3] holds 5 elements`},
		{"no classes", func(r *sdk.LossRequest) { r.Inputs["logits"] = sdk.NewFloat32(nil, 2, 0) }, `input "logits": float32[2 0] has no classes`},
		{"NaN logit", func(r *sdk.LossRequest) { r.Inputs["logits"].F32[4] = nan }, `input "logits": element [1, 1] is NaN`},
		{"no labels nor targets", func(r *sdk.LossRequest) { delete(r.Inputs, "labels") }, `needs "labels" (int32 [N]) or "targets"`},
		{"float labels", func(r *sdk.LossRequest) { r.Inputs["labels"] = sdk.NewFloat32([]float32{0, 2}, 2) },
			`input "labels": got float32[2], want int32 [N]`},
		{"labels of another batch", func(r *sdk.LossRequest) { r.Inputs["labels"] = sdk.NewInt32([]int32{0, 1, 2}, 3) },
			`input "labels": int32[3] for logits float32[2 3]: want 2 labels`},
		{"label too large", func(r *sdk.LossRequest) { r.Inputs["labels"].I32[1] = 3 },
			`input "labels": labels[1] = 3 is out of range [0, 3)`},
		{"negative label", func(r *sdk.LossRequest) { r.Inputs["labels"].I32[0] = -1 },
			`input "labels": labels[0] = -1 is out of range [0, 3)`},
		{"targets of another shape", func(r *sdk.LossRequest) { r.Inputs["targets"] = sdk.NewFloat32(make([]float32, 4), 2, 2) },
			`input "targets": float32[2 2], logits are float32[2 3]`},
		{"int targets", func(r *sdk.LossRequest) { r.Inputs["targets"] = sdk.NewInt32(make([]int32, 6), 2, 3) },
			`input "targets": got int32[2 3]`},
		{"weights of another batch", func(r *sdk.LossRequest) { r.Inputs["weights"] = sdk.NewFloat32([]float32{1}, 1) },
			`input "weights": float32[1] for logits float32[2 3]: want 2 weights`},
		{"int weights", func(r *sdk.LossRequest) { r.Inputs["weights"] = sdk.NewInt32([]int32{1, 1}, 2) },
			`input "weights": got int32[2], want float32 [N]`},
		{"infinite weight", func(r *sdk.LossRequest) {
			r.Inputs["weights"] = sdk.NewFloat32([]float32{1, float32(math.Inf(1))}, 2)
		}, `input "weights": weights[1] is +Inf`},
		{"gradient for labels", func(r *sdk.LossRequest) { r.GradFor = []string{"logits", "labels"} },
			`gradient for input "labels" asked`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := good()
			tc.change(req)
			_, err := (&Loss{}).Compute(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (&Loss{}).Compute(ctx, good()); err == nil {
		t.Error("a cancelled call computed")
	}
	// No rows: loss 0 and an empty gradient.
	res, err := (&Loss{}).Compute(context.Background(), &sdk.LossRequest{Inputs: map[string]*sdk.Tensor{
		"logits": sdk.NewFloat32(nil, 0, 3), "labels": sdk.NewInt32(nil, 0)}, GradFor: []string{"logits"}})
	if err != nil || res.Loss != 0 || res.Grads["logits"].Check() != nil {
		t.Errorf("empty batch: %+v, %v", res, err)
	}
}

// TestOverGRPC serves the plugin in-process as the host sees it: Info,
// Configure, Compute with a gradient, and an input error as InvalidArgument.
func TestOverGRPC(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	sdk.RegisterServices(s, &Loss{})
	go func() { _ = s.Serve(lis) }()
	defer s.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) { return lis.Dial() }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	info, err := pb.NewPluginClient(conn).Info(ctx, &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "focal" || info.Kind != pb.Kind_KIND_LOSS || len(info.Schema) != 2 ||
		info.Schema[0].Key != "gamma" || info.Schema[0].DefaultJson != "2" {
		t.Errorf("info %v", info)
	}
	if _, err := pb.NewPluginClient(conn).Configure(ctx, &pb.ConfigureRequest{ApiVersion: sdk.APIVersion,
		ConfigJson: `{"gamma": -1, "label_smoothing": 0}`}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "gamma must be") {
		t.Errorf("gamma -1: %v, want InvalidArgument", err)
	}
	if _, err := pb.NewPluginClient(conn).Configure(ctx, &pb.ConfigureRequest{ApiVersion: sdk.APIVersion,
		ConfigJson: `{"gamma": 1.5, "label_smoothing": 0.1}`}); err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(9, 9)), 4, 3, 1)
	b.weights = []float32{1, 2, 0, 1}
	req := b.request(true)
	wire := &pb.LossRequest{GradFor: req.GradFor, Training: true}
	for name, x := range req.Inputs {
		p, err := x.ToProto(name)
		if err != nil {
			t.Fatal(err)
		}
		wire.Inputs = append(wire.Inputs, p)
	}
	resp, err := pb.NewLossClient(conn).Compute(ctx, wire)
	if err != nil {
		t.Fatal(err)
	}
	want, wantGrad := reference(b.rows(), b.targetRows(0.1), 1.5, b.weights64())
	if !near(resp.Loss, want, 1e-12, 1e-12) || len(resp.Grads) != 1 || resp.Grads[0].Name != "logits" {
		t.Fatalf("loss %v (want %v), grads %v", resp.Loss, want, resp.Grads)
	}
	g, err := sdk.FromProto(resp.Grads[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range wantGrad {
		for j := range wantGrad[i] {
			if !near(float64(g.F32[i*3+j]), wantGrad[i][j], 1e-6, 1e-8) {
				t.Errorf("gradient [%d, %d] = %v, want %v", i, j, g.F32[i*3+j], wantGrad[i][j])
			}
		}
	}
	b.labels[2] = 7
	bad, _ := sdk.NewInt32(b.labels, 4).ToProto("labels")
	for i, p := range wire.Inputs {
		if p.Name == "labels" {
			wire.Inputs[i] = bad
		}
	}
	if _, err := pb.NewLossClient(conn).Compute(ctx, wire); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), `input "labels": labels[2] = 7`) {
		t.Errorf("label out of range: %v, want InvalidArgument naming labels", err)
	}
}
