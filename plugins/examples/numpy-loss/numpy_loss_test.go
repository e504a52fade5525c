// Package numpyloss_test proves that the Python example plugin
// peco-plugin-numpy_ce speaks the peco plugin protocol: it is started through
// hashicorp/go-plugin with AutoMTLS, as the host starts plugins, and its
// loss and gradient are checked against a float64 reference and against
// finite differences of the plugin's own loss.
package numpyloss_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

const python = "/usr/bin/python3"

// pluginPath is the absolute path of the plugin executable; the test skips
// when its Python modules are missing.
func pluginPath(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		t.Skipf("skipping: %s not found (the plugin needs Debian's python3 with python3-grpcio, python3-protobuf, python3-numpy, python3-cryptography)", python)
	}
	out, err := exec.Command(python, "-c", "import grpc, google.protobuf, numpy, cryptography").CombinedOutput()
	if err != nil {
		t.Skipf("skipping: %s cannot import the plugin's modules (install Debian's python3-grpcio python3-protobuf python3-numpy python3-cryptography): %v\n%s", python, err, out)
	}
	p, err := filepath.Abs("peco-plugin-numpy_ce")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		t.Fatalf("%s is not executable (mode %v)", p, st.Mode())
	}
	return p
}

// testWriter sends log lines to t.Log until closed.
type testWriter struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *testWriter) close() { w.mu.Lock(); w.closed = true; w.mu.Unlock() }

// start starts the plugin as the host does and returns its clients.
func start(t *testing.T, autoMTLS bool) (*plugin.Client, *sdk.Clients) {
	t.Helper()
	path := pluginPath(t)
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              exec.Command(path),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         autoMTLS,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes))},
		Logger: hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: w}),
	})
	t.Cleanup(client.Kill)
	t0 := time.Now()
	rpc, err := client.Client()
	if err != nil {
		t.Fatalf("starting the plugin: %v", err)
	}
	t.Logf("plugin started in %v (AutoMTLS %v)", time.Since(t0).Round(time.Millisecond), autoMTLS)
	if err := rpc.Ping(); err != nil {
		t.Fatalf("health check: %v", err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return client, raw.(*sdk.Clients)
}

// wantCode fails unless err is a status of code whose message holds want.
func wantCode(t *testing.T, err error, code codes.Code, want string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != code {
		t.Fatalf("got error %v, want %v", err, code)
	}
	if !strings.Contains(st.Message(), want) {
		t.Fatalf("error %q does not mention %q", st.Message(), want)
	}
}

// reference is the loss of losses/crossentropy.go in float64: mean (or
// weighted mean sum(w*ce)/max(sum(w), 1)) softmax cross-entropy against
// targets, soft ones as given or else labels smoothed to
// (1-eps)*onehot + eps/K, and its gradient with respect to logits,
// (softmax * sum(t) - t) times the row's weight in the mean.
func reference(logits []float32, labels []int32, targets, weights []float32, n, k int, eps float64) (float64, []float64) {
	tgt := func(i, j int) float64 {
		if targets != nil {
			return float64(targets[i*k+j])
		}
		v := eps / float64(k)
		if j == int(labels[i]) {
			v += 1 - eps
		}
		return v
	}
	ce := make([]float64, n)
	grad := make([]float64, n*k)
	for i := range n {
		row := logits[i*k : (i+1)*k]
		m := math.Inf(-1)
		for _, x := range row {
			m = math.Max(m, float64(x))
		}
		s := 0.0
		for _, x := range row {
			s += math.Exp(float64(x) - m)
		}
		lse := m + math.Log(s)
		ts := 0.0
		for j := range k {
			ts += tgt(i, j)
		}
		for j, x := range row {
			ce[i] -= tgt(i, j) * (float64(x) - lse)
			grad[i*k+j] = math.Exp(float64(x)-lse)*ts - tgt(i, j)
		}
	}
	scale := make([]float64, n)
	if weights == nil {
		for i := range n {
			scale[i] = 1 / float64(n)
		}
	} else {
		sw := 0.0
		for _, w := range weights {
			sw += float64(w)
		}
		for i := range n {
			scale[i] = float64(weights[i]) / math.Max(sw, 1)
		}
	}
	loss := 0.0
	for i := range n {
		loss += scale[i] * ce[i]
		for j := range k {
			grad[i*k+j] *= scale[i]
		}
	}
	return loss, grad
}

// inputs encodes the loss inputs: logits, labels, and weights if not nil.
func inputs(t *testing.T, logits []float32, labels []int32, weights []float32, n, k int) []*pb.Tensor {
	return inputsT(t, logits, labels, nil, weights, n, k)
}

// inputsT encodes logits and either soft targets (if not nil) or labels,
// and weights if not nil.
func inputsT(t *testing.T, logits []float32, labels []int32, targets, weights []float32, n, k int) []*pb.Tensor {
	t.Helper()
	l, err := sdk.NewFloat32(logits, n, k).ToProto("logits")
	if err != nil {
		t.Fatal(err)
	}
	var b *pb.Tensor
	if targets != nil {
		b, err = sdk.NewFloat32(targets, n, k).ToProto("targets")
	} else {
		b, err = sdk.NewInt32(labels, n).ToProto("labels")
	}
	if err != nil {
		t.Fatal(err)
	}
	in := []*pb.Tensor{l, b}
	if weights != nil {
		w, err := sdk.NewFloat32(weights, n).ToProto("weights")
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, w)
	}
	return in
}

func TestNumpyCrossEntropy(t *testing.T) {
	_, c := start(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n, k, eps = 7, 5, 0.1
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, n*k)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 2)
	}
	logits[3] += 40 // a large logit: the plugin must subtract the row max
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(k))
	}
	weights := make([]float32, n)
	for i := range weights {
		weights[i] = float32(rng.Float64() * 2)
	}
	weights[2] = 0
	small := make([]float32, n) // sum(w) < 1: the normaliser is 1
	small[1], small[4] = 0.25, 0.5
	soft := make([]float32, n*k) // Mixup-like soft targets
	for i := range n {
		sum := 0.0
		for j := range k {
			v := rng.Float64()
			soft[i*k+j] = float32(v)
			sum += v
		}
		if i == 5 {
			sum /= 0.7 // a row summing to 0.7: d/dz is softmax*sum(t) - t
		}
		for j := range k {
			soft[i*k+j] = float32(float64(soft[i*k+j]) / sum)
		}
	}

	compute := func(in []*pb.Tensor, grad bool) (*pb.LossResponse, error) {
		req := &pb.LossRequest{Step: 3, Inputs: in, Training: true}
		if grad {
			req.GradFor = []string{"logits"}
		}
		return c.Loss.Compute(ctx, req)
	}

	// The steps run in order on one plugin process.
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"Info", func(t *testing.T) {
			info, err := c.Plugin.Info(ctx, &pb.InfoRequest{HostApiVersions: []int32{sdk.APIVersion}})
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != "numpy_ce" || info.Kind != pb.Kind_KIND_LOSS || info.Version != "1.0.0" ||
				len(info.ApiVersions) != 1 || info.ApiVersions[0] != 1 || info.Doc == "" {
				t.Fatalf("Info = %v", info)
			}
			if len(info.Schema) != 1 {
				t.Fatalf("schema = %v, want label_smoothing only", info.Schema)
			}
			f := info.Schema[0]
			if f.Key != "label_smoothing" || f.Type != pb.FieldType_FIELD_TYPE_FLOAT || f.Doc == "" {
				t.Fatalf("schema field = %v", f)
			}
			var def float64
			if err := json.Unmarshal([]byte(f.DefaultJson), &def); err != nil || def != 0 {
				t.Fatalf("default_json = %q (%v), want 0", f.DefaultJson, err)
			}
		}},
		{"ComputeBeforeConfigure", func(t *testing.T) {
			_, err := compute(inputs(t, logits, labels, nil, n, k), true)
			wantCode(t, err, codes.FailedPrecondition, "Configure")
			_, err = c.Loss.Save(ctx, &pb.SaveRequest{})
			wantCode(t, err, codes.FailedPrecondition, "Configure")
		}},
		{"ConfigureWrongAPIVersion", func(t *testing.T) {
			_, err := c.Plugin.Configure(ctx, &pb.ConfigureRequest{ConfigJson: `{"label_smoothing": 0.1}`, ApiVersion: 2})
			wantCode(t, err, codes.FailedPrecondition, "API version")
		}},
		{"ConfigureOutOfRange", func(t *testing.T) {
			_, err := c.Plugin.Configure(ctx, &pb.ConfigureRequest{ConfigJson: `{"label_smoothing": 1.5}`, ApiVersion: 1})
			wantCode(t, err, codes.InvalidArgument, "label_smoothing")
			_, err = c.Plugin.Configure(ctx, &pb.ConfigureRequest{ConfigJson: `{"label_smoothing": -0.1}`, ApiVersion: 1})
			wantCode(t, err, codes.InvalidArgument, "label_smoothing")
			_, err = compute(inputs(t, logits, labels, nil, n, k), true)
			wantCode(t, err, codes.FailedPrecondition, "Configure")
		}},
		{"Configure", func(t *testing.T) {
			_, err := c.Plugin.Configure(ctx, &pb.ConfigureRequest{ConfigJson: `{"label_smoothing": 0.1}`, Seed: 7, ApiVersion: 1})
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"Compute", func(t *testing.T) {
			for _, tc := range []struct {
				name             string
				targets, weights []float32
			}{
				{"mean", nil, nil}, {"weighted", nil, weights}, {"weighted/sum<1", nil, small},
				{"soft targets", soft, nil}, {"soft targets/weighted", soft, weights},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, err := compute(inputsT(t, logits, labels, tc.targets, tc.weights, n, k), true)
					if err != nil {
						t.Fatal(err)
					}
					want, wantGrad := reference(logits, labels, tc.targets, tc.weights, n, k, eps)
					if math.Abs(resp.Loss-want) > 1e-9*math.Abs(want) {
						t.Fatalf("loss %.12g, want %.12g", resp.Loss, want)
					}
					if len(resp.Grads) != 1 || resp.Grads[0].Name != "logits" {
						t.Fatalf("grads %v, want one for logits", resp.Grads)
					}
					g, err := sdk.FromProto(resp.Grads[0])
					if err != nil {
						t.Fatal(err)
					}
					if g.DType != sdk.Float32 || fmt.Sprint(g.Shape) != fmt.Sprint([]int{n, k}) {
						t.Fatalf("gradient is %s, want float32[%d %d]", g, n, k)
					}
					for i, v := range g.F32 {
						if d := math.Abs(float64(v) - wantGrad[i]); d > 1e-6*math.Abs(wantGrad[i])+1e-8 {
							t.Fatalf("grad[%d] = %g, want %g", i, v, wantGrad[i])
						}
					}
					// Central finite differences of the plugin's own loss.
					for _, idx := range []int{0, 3, 2*k + 1, 3*k + 4, (n-1)*k + 2} {
						const h = 1e-2
						plus := append([]float32(nil), logits...)
						minus := append([]float32(nil), logits...)
						plus[idx] += h
						minus[idx] -= h
						lp, err := compute(inputsT(t, plus, labels, tc.targets, tc.weights, n, k), false)
						if err != nil {
							t.Fatal(err)
						}
						lm, err := compute(inputsT(t, minus, labels, tc.targets, tc.weights, n, k), false)
						if err != nil {
							t.Fatal(err)
						}
						if len(lp.Grads) != 0 {
							t.Fatalf("grads %v returned without grad_for", lp.Grads)
						}
						fd := (lp.Loss - lm.Loss) / float64(plus[idx]-minus[idx])
						gv := float64(g.F32[idx])
						if math.Abs(fd-gv) > 1e-3*math.Abs(gv)+1e-7 {
							t.Errorf("grad[%d] = %g, finite difference %g", idx, gv, fd)
						}
					}
				})
			}
		}},
		{"LargeMessage", func(t *testing.T) {
			// 16 MiB of logits, over gRPC's default 4 MiB on both sides.
			const n, k = 1024, 4096
			big := make([]float32, n*k)
			for i := range big {
				big[i] = float32(rng.NormFloat64())
			}
			lb := make([]int32, n)
			for i := range lb {
				lb[i] = int32(rng.IntN(k))
			}
			in := inputs(t, big, lb, nil, n, k)
			t0 := time.Now()
			resp, err := compute(in, true)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Compute of float32[%d %d] with its gradient: %v", n, k, time.Since(t0).Round(time.Millisecond))
			want, _ := reference(big, lb, nil, nil, n, k, eps)
			if math.Abs(resp.Loss-want) > 1e-9*math.Abs(want) {
				t.Fatalf("loss %.12g, want %.12g", resp.Loss, want)
			}
			if len(resp.Grads) != 1 || len(resp.Grads[0].Data) != 4*n*k {
				t.Fatalf("want a float32[%d %d] gradient", n, k)
			}
		}},
		{"BadInputs", func(t *testing.T) {
			in := func(f func(l, b *pb.Tensor) []*pb.Tensor) []*pb.Tensor {
				x := inputs(t, logits, labels, nil, n, k)
				return f(x[0], x[1])
			}
			bad := append([]int32(nil), labels...)
			bad[4] = k
			neg := append([]int32(nil), labels...)
			neg[0] = -1
			for _, tc := range []struct {
				name, want string
				in         []*pb.Tensor
			}{
				{"label too large", "labels", inputs(t, logits, bad, nil, n, k)},
				{"label negative", "labels", inputs(t, logits, neg, nil, n, k)},
				{"no labels", "labels", in(func(l, _ *pb.Tensor) []*pb.Tensor { return []*pb.Tensor{l} })},
				{"no logits", "logits", in(func(_, b *pb.Tensor) []*pb.Tensor { return []*pb.Tensor{b} })},
				{"logits rank 1", "logits", in(func(l, b *pb.Tensor) []*pb.Tensor {
					l.Shape = []int64{n * k}
					return []*pb.Tensor{l, b}
				})},
				{"logits int32", "logits", in(func(l, b *pb.Tensor) []*pb.Tensor {
					l.Dtype = pb.DType_DTYPE_INT32
					return []*pb.Tensor{l, b}
				})},
				{"labels float32", "labels", in(func(l, b *pb.Tensor) []*pb.Tensor {
					b.Dtype = pb.DType_DTYPE_FLOAT32
					return []*pb.Tensor{l, b}
				})},
				{"labels short", "labels", in(func(l, b *pb.Tensor) []*pb.Tensor {
					b.Shape, b.Data = []int64{n - 1}, b.Data[:4*(n-1)]
					return []*pb.Tensor{l, b}
				})},
				{"targets wrong shape", "targets", in(func(l, _ *pb.Tensor) []*pb.Tensor {
					return []*pb.Tensor{l, inputsT(t, logits[:n*(k-1)], nil, soft[:n*(k-1)], nil, n, k-1)[1]}
				})},
				{"unknown input", "extra", in(func(l, b *pb.Tensor) []*pb.Tensor {
					x := &pb.Tensor{Name: "extra", Dtype: b.Dtype, Shape: b.Shape, Data: b.Data}
					return []*pb.Tensor{l, b, x}
				})},
				{"logits truncated", "logits", in(func(l, b *pb.Tensor) []*pb.Tensor {
					l.Data = l.Data[:len(l.Data)-4]
					return []*pb.Tensor{l, b}
				})},
			} {
				t.Run(tc.name, func(t *testing.T) {
					_, err := compute(tc.in, true)
					wantCode(t, err, codes.InvalidArgument, tc.want)
				})
			}
			// A gradient for an input the loss cannot differentiate.
			_, err := c.Loss.Compute(ctx, &pb.LossRequest{Inputs: inputs(t, logits, labels, nil, n, k), GradFor: []string{"labels"}})
			wantCode(t, err, codes.InvalidArgument, "labels")
		}},
		{"SaveLoad", func(t *testing.T) {
			st, err := c.Loss.Save(ctx, &pb.SaveRequest{Step: 3})
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Data) != 0 {
				t.Fatalf("state of %d bytes, want none", len(st.Data))
			}
			if _, err := c.Loss.Load(ctx, st); err != nil {
				t.Fatal(err)
			}
			_, err = c.Loss.Load(ctx, &pb.State{Data: []byte("x")})
			wantCode(t, err, codes.InvalidArgument, "state")
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow()
		}
	}
}

// TestKill checks that Kill ends the process, through go-plugin's
// GRPCController.Shutdown (well before Kill's 2 s fallback to SIGKILL).
func TestKill(t *testing.T) {
	client, c := start(t, true)
	if _, err := c.Plugin.Info(context.Background(), &pb.InfoRequest{}); err != nil {
		t.Fatal(err)
	}
	if client.Exited() {
		t.Fatal("the plugin exited early")
	}
	t0 := time.Now()
	client.Kill()
	if !client.Exited() {
		t.Fatal("the plugin is still running after Kill")
	}
	if d := time.Since(t0); d > 1500*time.Millisecond {
		t.Errorf("Kill took %v: the plugin did not exit on Shutdown", d)
	}
}

// TestPlaintext checks the handshake without AutoMTLS (five fields) and the
// health service.
func TestPlaintext(t *testing.T) {
	client, c := start(t, false)
	ctx := context.Background()
	info, err := c.Plugin.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "numpy_ce" {
		t.Fatalf("Info = %v", info)
	}
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	health := healthpb.NewHealthClient(rpc.(*plugin.GRPCClient).Conn)
	for _, svc := range []string{"plugin", ""} {
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v, %v; want SERVING", svc, r, err)
		}
	}
	_, err = health.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"})
	wantCode(t, err, codes.NotFound, "other")
}

// handshakeEnv is the environment go-plugin gives a plugin, without TLS.
func handshakeEnv(extra ...string) []string {
	return append(append(os.Environ(), sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1"), extra...)
}

// readLine reads one line of r within a timeout.
func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		return strings.TrimSpace(s)
	case <-time.After(30 * time.Second):
		t.Fatal("no line from the plugin within 30 s")
	}
	return ""
}

func TestRefusals(t *testing.T) {
	path := pluginPath(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"no cookie", os.Environ(), "peco plugin"},
		{"wrong protocol", append(os.Environ(), sdk.Handshake.MagicCookieKey+"="+sdk.Handshake.MagicCookieValue,
			"PLUGIN_PROTOCOL_VERSIONS=2,3"), "protocol version"},
		{"bad client cert", handshakeEnv("PLUGIN_CLIENT_CERT=junk"), "PLUGIN_CLIENT_CERT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(path)
			cmd.Env = tc.env
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1", err)
			}
			if len(out) != 0 {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestPortRangeAndSIGTERM checks PLUGIN_MIN_PORT/PLUGIN_MAX_PORT (a busy
// port of the range is skipped, as go-plugin's Go servers do), that SIGINT
// is ignored and that SIGTERM ends the plugin.
func TestPortRangeAndSIGTERM(t *testing.T) {
	path := pluginPath(t)
	// Two consecutive ports, the first kept busy.
	var busy net.Listener
	port := 0
	for try := 0; try < 50 && port == 0; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if next, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			next.Close()
			busy, port = l, p
			break
		}
		l.Close()
	}
	if port == 0 {
		t.Skip("no two consecutive free ports found")
	}
	defer busy.Close()
	cmd := exec.Command(path)
	cmd.Env = handshakeEnv(fmt.Sprintf("PLUGIN_MIN_PORT=%d", port), fmt.Sprintf("PLUGIN_MAX_PORT=%d", port+1))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck // best effort
	line := readLine(t, bufio.NewReader(stdout))
	if want := fmt.Sprintf("1|1|tcp|127.0.0.1:%d|grpc", port+1); line != want {
		t.Fatalf("handshake %q, want %q", line, want)
	}
	conn, err := grpc.NewClient(fmt.Sprintf("passthrough:///127.0.0.1:%d", port+1), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pb.NewPluginClient(conn).Info(ctx, &pb.InfoRequest{}); err != nil {
		t.Fatalf("Info over plaintext: %v", err)
	}
	// SIGINT (a terminal's Ctrl-C reaches the whole process group) is
	// ignored, as by go-plugin's Go servers: the host ends its plugins.
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := pb.NewPluginClient(conn).Info(ctx, &pb.InfoRequest{}); err != nil {
		t.Fatalf("Info after SIGINT: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after SIGTERM: %v, want exit 0; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin is still running 5 s after SIGTERM")
	}
	if strings.Contains(stderr.String(), "Address already in use") {
		t.Errorf("the busy port reached grpc's bind:\n%s", stderr.String())
	}
}

// TestParentDeath checks that the plugin exits when its parent dies (the
// backup of the host's Pdeathsig): a shell starts it and exits.
func TestParentDeath(t *testing.T) {
	path := pluginPath(t)
	cmd := exec.Command("/bin/sh", "-c", `"$0" & echo "pid $!"; read x; exit 0`, path)
	cmd.Env = handshakeEnv()
	// An os.Pipe, not StdoutPipe: Wait must not close our read end.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout = pw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := bufio.NewReader(pr)
	var pid int
	for range 2 { // the shell's "pid N" and the plugin's handshake, in either order
		line := readLine(t, r)
		if _, err := fmt.Sscanf(line, "pid %d", &pid); err == nil {
			continue
		}
		if !strings.HasPrefix(line, "1|1|tcp|127.0.0.1:") {
			t.Fatalf("unexpected line %q", line)
		}
	}
	if pid == 0 {
		t.Fatal("no pid from the shell")
	}
	defer syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // best effort
	stdin.Close()                            // the shell exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	// The plugin held the pipe's write end too: EOF means it is gone.
	done := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin is still running 10 s after its parent exited")
	}
}

// selfSigned returns a PEM certificate and its tls.Certificate, for
// "localhost", as go-plugin's AutoMTLS makes them.
func selfSigned(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P521(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, cert
}

// TestMTLSRequiresHostCert checks the server side of AutoMTLS by hand: the
// sixth handshake field is the server's certificate (DER, base64 without
// padding) and the plugin accepts only the certificate of PLUGIN_CLIENT_CERT.
func TestMTLSRequiresHostCert(t *testing.T) {
	path := pluginPath(t)
	hostPEM, hostCert := selfSigned(t)
	_, otherCert := selfSigned(t)
	cmd := exec.Command(path)
	cmd.Env = handshakeEnv("PLUGIN_CLIENT_CERT=" + string(hostPEM))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	parts := strings.Split(readLine(t, bufio.NewReader(stdout)), "|")
	if len(parts) != 6 || parts[0] != "1" || parts[1] != "1" || parts[2] != "tcp" || parts[4] != "grpc" {
		t.Fatalf("handshake fields %q", parts)
	}
	if strings.HasSuffix(parts[5], "=") {
		t.Fatalf("certificate field %q is padded", parts[5])
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(serverCert)

	info := func(certs []tls.Certificate) error {
		conn, err := grpc.NewClient("passthrough:///"+parts[3], grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{Certificates: certs, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = pb.NewPluginClient(conn).Info(ctx, &pb.InfoRequest{})
		return err
	}
	if err := info([]tls.Certificate{hostCert}); err != nil {
		t.Fatalf("with the host's certificate: %v", err)
	}
	if err := info(nil); err == nil {
		t.Error("a client without a certificate was served")
	}
	if err := info([]tls.Certificate{otherCert}); err == nil {
		t.Error("a client with another certificate was served")
	}
}
