package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/bench"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/cpu"
)

// newBenchCmd is `peco bench`: our training steps side by side with the
// PyTorch peer, each in its own process, in one invocation, over
// alternating rounds.
func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	var iters, warmup, rounds int
	var dataDir, weightsDir string
	var python, peerScript, out, backend, threadList string
	var noPeer, noOpProfile bool
	var childTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "bench [WORKLOAD...]",
		Short: "time training steps against the PyTorch peer on the same workloads; print a table, save JSON",
		Long: "Workloads: " + strings.Join(bench.Names(), ", ") + ` (default: all but the scaling and extra ones).
Each workload runs in a child process (peak RSS is its own), ours and the
PyTorch peer (bench/peers/torch_peer.py with --python, Debian's python3-torch)
alternating over --rounds rounds (ours first in even rounds, the peer first in
odd ones), at each of --threads. Reported: each impl's median step time over
the rounds, the speed ratio ours/peer as median and min-max over the rounds,
peak RSS, the step's FLOPs (counted from our compiled graph) as GFLOP/s and a
fraction of the machine's fp32 peak, and where our step's time goes per op
kind. Results go to --out as bench-<date>-<host>.json.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				names = bench.DefaultNames()
			}
			for _, n := range names {
				_, isPipe := bench.Pipelines[n]
				if _, ok := bench.Workloads[n]; !ok && !isPipe {
					return fmt.Errorf("unknown workload %q; workloads: %s", n, strings.Join(bench.Names(), ", "))
				}
			}
			threads, err := parseThreads(threadList)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			peak, perr := bench.MachinePeak()
			if perr != nil {
				fmt.Fprintf(stderr, "bench: %v (no peak fractions)\n", perr)
			}
			load0 := loadAvg()
			measured := measurePeaks(threads, stderr)
			started := time.Now()
			var results []bench.Result
			for round := range max(rounds, 1) {
				for _, t := range threads {
					for _, n := range names {
						rs, err := benchRound(n, round, t, benchChild{self: self, python: python, peerScript: peerScript,
							backend: backend, dataDir: dataDir, weightsDir: weightsDir, iters: iters, warmup: warmup,
							timeout: childTimeout, noPeer: noPeer, opProfile: !noOpProfile}, stderr)
						if err != nil {
							return err
						}
						results = append(results, rs...)
					}
				}
			}
			sums := bench.Summarize(results, bench.PeakAt(peak.PerCoreGFLOPs, measured))
			host, _ := os.Hostname()
			report := map[string]any{
				"date": started.UTC().Format(time.RFC3339), "host": host, "machine": machine(),
				"go": runtime.Version(), "gomlx": run.GoMLXVersion(), "peco": run.Version,
				"command": os.Args, "rounds": rounds, "results": results, "summary": sums,
				"peak": peak, "peak_formula": peak.Formula(), "measured_peak": measured,
				"loadavg_start": load0, "loadavg_end": loadAvg(), "wall_sec": time.Since(started).Seconds(),
			}
			fmt.Fprintf(stdout, "machine: %s, %s\npeak: %s\n", machine(), runtime.Version(), peak.Formula())
			for _, m := range measured {
				fmt.Fprintf(stdout, "measured peak: %s\n", m)
			}
			fmt.Fprintf(stdout, "fractions of peak below: of the larger of the nominal and the measured peak at the thread count\n")
			fmt.Fprintf(stdout, "load average (1, 5, 15 min): %s at the start, %s at the end\n\n%s", load0, loadAvg(), bench.SummaryTable(sums))
			for _, s := range sums {
				if len(s.Ops) > 0 && s.Steps > 0 {
					fmt.Fprintf(stdout, "\nwhere the time of our %s step goes (%d threads, per step, over %d timed steps):\n%s",
						s.Workload, s.Threads, s.Steps, cpu.OpTable(s.Ops, s.Steps))
				}
			}
			fmt.Fprintf(stdout, "\nper round:\n%s", bench.Table(results))
			if out == "" {
				return nil
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("bench results folder: %w", err)
			}
			b, err := json.MarshalIndent(report, "", "  ")
			if err != nil {
				return err
			}
			path := filepath.Join(out, fmt.Sprintf("bench-%s-%s.json", started.UTC().Format("20060102-150405"), host))
			if err := ckpt.WriteFileAtomic(path, append(b, '\n')); err != nil {
				return fmt.Errorf("bench results: %w", err)
			}
			fmt.Fprintf(stdout, "\nsaved %s\n", path)
			return nil
		},
	}
	cmd.Flags().IntVar(&iters, "iters", 5, "timed steps per workload and round (the median is the round's time)")
	cmd.Flags().IntVar(&warmup, "warmup", 2, "untimed steps first (the first one compiles)")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "alternating rounds of ours and the peer per workload (each a child process of its own)")
	cmd.Flags().StringVar(&threadList, "threads", "", "comma-separated thread counts to run at, e.g. 1,2 (GOMAXPROCS for ours, torch.set_num_threads for the peer; default: all CPUs)")
	cmd.Flags().BoolVar(&noOpProfile, "no-op-profile", false, "do not time our ops per kind (the cpu backend's profile option, on by default)")
	cmd.Flags().StringVar(&python, "python", "/usr/bin/python3", "python with torch, for the peer")
	cmd.Flags().StringVar(&peerScript, "peer-script", filepath.Join("bench", "peers", "torch_peer.py"), "the PyTorch peer script")
	cmd.Flags().BoolVar(&noPeer, "no-peer", false, "skip the PyTorch peer")
	cmd.Flags().DurationVar(&childTimeout, "timeout", 20*time.Minute, "kill a workload's child process (SIGKILL) after this long; a hang is reported as an error")
	cmd.Flags().StringVar(&out, "out", filepath.Join("bench", "results"), "folder for the JSON results (empty: do not save)")
	cmd.Flags().StringVar(&backend, "backend", "", "compute backend for our steps (default $PECO_BACKEND or cpu)")
	cmd.Flags().StringVar(&dataDir, "data", bench.DefaultDataDir, "folder holding the data archives of the pipeline and real-data workloads")
	cmd.Flags().StringVar(&weightsDir, "weights", bench.DefaultWeightsDir, "folder holding the pre-trained weights (mobilenet-tflite/ for the tokenizer workload's perceptual loss)")
	return cmd
}

// benchChild is what a workload's child processes are run with.
type benchChild struct {
	self, python, peerScript, backend, dataDir, weightsDir string
	iters, warmup                                          int
	timeout                                                time.Duration
	noPeer, opProfile                                      bool
}

// benchRound runs one round of workload name at threads threads (0: all
// CPUs): ours and the peer, ours first in even rounds.
func benchRound(name string, round, threads int, c benchChild, stderr io.Writer) ([]bench.Result, error) {
	w := bench.Workloads[name]
	_, isPipe := bench.Pipelines[name]
	nThreads := threads
	if nThreads == 0 {
		nThreads = runtime.NumCPU()
	}
	ours := func() (bench.Result, error) {
		fmt.Fprintf(stderr, "bench %s (round %d, %d threads): peco...\n", name, round+1, nThreads)
		args := []string{"bench-worker", name, "--iters", strconv.Itoa(c.iters), "--warmup", strconv.Itoa(c.warmup),
			"--backend", c.backend, "--data", c.dataDir, "--weights", c.weightsDir}
		if c.opProfile {
			args = append(args, "--op-profile")
		}
		var env []string
		if threads > 0 {
			env = append(env, "GOMAXPROCS="+strconv.Itoa(threads))
		}
		r, err := runChild(c.self, args, env, c.timeout, stderr)
		if err != nil {
			return r, fmt.Errorf("bench %s (peco): %w", name, err)
		}
		return r, nil
	}
	peer := func() (bench.Result, error) {
		fmt.Fprintf(stderr, "bench %s (round %d, %d threads): torch...\n", name, round+1, nThreads)
		layers := w.Layers
		if w.GEMM > 0 {
			layers = w.GEMM
		}
		args := []string{c.peerScript, w.Peer, strconv.Itoa(layers), strconv.Itoa(w.Batch), strconv.Itoa(c.warmup), strconv.Itoa(c.iters)}
		if w.Data != "" {
			args = append(args, filepath.Join(c.dataDir, w.Data)) // the peer reads the same archive
		}
		env := []string{"THREADS=" + strconv.Itoa(nThreads)}
		if w.Image > 0 {
			env = append(env, "IMAGE="+strconv.Itoa(w.Image))
		}
		p, err := runChild(c.python, args, env, c.timeout, io.Discard)
		if err != nil {
			return p, fmt.Errorf("bench %s (peer %s %s; install it with apt-get install python3-torch libopenblas0-pthread, or pass --no-peer): %w",
				name, c.python, c.peerScript, err)
		}
		p.Workload = name
		return p, nil
	}
	steps := []func() (bench.Result, error){ours}
	if !c.noPeer && !isPipe && w.Peer != "" { // no torchvision on this machine: the pipelines have no peer
		if round%2 == 0 {
			steps = append(steps, peer)
		} else {
			steps = []func() (bench.Result, error){peer, ours}
		}
	}
	var out []bench.Result
	for _, s := range steps {
		r, err := s()
		if err != nil {
			return nil, err
		}
		r.Round, r.Threads = round, nThreads
		out = append(out, r)
	}
	return out, nil
}

// parseThreads reads --threads: comma-separated counts >= 1, or "" for one
// run at all CPUs (0).
// measurePeaks runs bench.MeasurePeak for 2 s at 1 thread and at each other
// thread count of the run (0 = all CPUs), before the workloads; a machine
// without the loop gets a note on stderr and no measurement.
func measurePeaks(threads []int, stderr io.Writer) []bench.MeasuredPeak {
	counts := []int{1}
	for _, t := range threads {
		if t == 0 {
			t = runtime.NumCPU()
		}
		if !slices.Contains(counts, t) {
			counts = append(counts, t)
		}
	}
	var out []bench.MeasuredPeak
	for _, t := range counts {
		m, err := bench.MeasurePeak(t, 2*time.Second)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return out
		}
		out = append(out, m)
	}
	return out
}

func parseThreads(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return []int{0}, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--threads %q: want comma-separated counts >= 1", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// loadAvg returns the 1, 5 and 15 minute load averages of /proc/loadavg,
// or "unknown".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// newBenchWorkerCmd is the hidden child that times one workload and prints
// its result as JSON.
func newBenchWorkerCmd(stdout io.Writer) *cobra.Command {
	var iters, warmup int
	var dataDir, weightsDir string
	var backend, cpuProfile string
	var opProfile bool
	cmd := &cobra.Command{
		Use:    "bench-worker WORKLOAD",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pw, ok := bench.Pipelines[args[0]]; ok {
				r, err := bench.RunPipeline(pw, dataDir, warmup, iters)
				if err != nil {
					return err
				}
				return json.NewEncoder(stdout).Encode(r)
			}
			w, ok := bench.Workloads[args[0]]
			if !ok {
				return fmt.Errorf("unknown workload %q", args[0])
			}
			if opProfile {
				backend = withProfile(backend)
			}
			b, desc, err := OpenBackend(backend)
			if err != nil {
				return err
			}
			defer b.Finalize()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			r, err := bench.RunStep(b, w, bench.Files{DataDir: dataDir, WeightsDir: weightsDir}, warmup, iters)
			if err != nil {
				return err
			}
			r.Note = desc
			if len(r.Ops) > 0 && !opProfile {
				// --backend cpu:profile: where each op type's time went.
				fmt.Fprintf(cmd.ErrOrStderr(), "op profile of %s (%d timed steps):\n%s", w.Name, iters, cpu.OpTable(r.Ops, 1))
			}
			return json.NewEncoder(stdout).Encode(r)
		},
	}
	cmd.Flags().IntVar(&iters, "iters", 5, "timed steps")
	cmd.Flags().IntVar(&warmup, "warmup", 2, "untimed steps")
	cmd.Flags().StringVar(&backend, "backend", "", "compute backend")
	cmd.Flags().StringVar(&dataDir, "data", bench.DefaultDataDir, "folder holding the data archives")
	cmd.Flags().StringVar(&weightsDir, "weights", bench.DefaultWeightsDir, "folder holding the pre-trained weights")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the workload to this file")
	cmd.Flags().BoolVar(&opProfile, "op-profile", false, "time the ops per kind (the cpu backend's profile option) and put them in the result")
	return cmd
}

// runChild runs a command (with env added to this process's environment)
// that prints one JSON Result line last, and adds its peak RSS. An op profile the child printed (--backend cpu:profile) is
// copied to profileOut.
//
// The child is killed with SIGKILL after timeout (peco catches SIGTERM for a
// graceful stop, which a deadlocked backend never reaches).
func runChild(name string, args, env []string, timeout time.Duration, profileOut io.Writer) (bench.Result, error) {
	var r bench.Result
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		c.Env = append(os.Environ(), env...)
	}
	var outBuf, errBuf bytes.Buffer
	c.Stdout, c.Stderr = &outBuf, &errBuf
	if err := c.Run(); err != nil {
		if ctx.Err() != nil {
			return r, fmt.Errorf("killed after %s (hung?): %s", timeout, lastLines(errBuf.String(), 5))
		}
		return r, fmt.Errorf("%w: %s", err, lastLines(errBuf.String(), 5))
	}
	if i := strings.Index(errBuf.String(), "op profile of"); i >= 0 {
		io.WriteString(profileOut, errBuf.String()[i:])
	}
	lines := strings.Split(strings.TrimSpace(outBuf.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return r, fmt.Errorf("reading the result line %q: %w", lines[len(lines)-1], err)
	}
	if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > 0 {
		r.MaxRSSMiB = float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	return r, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// machine describes the CPU and core count.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					model = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (%s/%s)", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// withProfile adds the cpu backend's profile option to a backend spec ("",
// $PECO_BACKEND, "cpu" or "cpu:OPTIONS"); other backends are returned as
// they are.
func withProfile(spec string) string {
	if spec == "" {
		spec = os.Getenv(BackendEnv)
	}
	if spec == "" {
		spec = DefaultBackend
	}
	name, opts, _ := strings.Cut(spec, ":")
	if name != cpu.BackendName || slices.Contains(strings.Split(opts, ","), "profile") {
		return spec
	}
	if opts == "" {
		return name + ":profile"
	}
	return spec + ",profile"
}
