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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/bench"
	"github.com/peco-dev/peco/core/ckpt"
	"github.com/peco-dev/peco/core/run"
)

// newBenchCmd is `peco bench`: our training steps side by side with the
// PyTorch peer, each in its own process, in one invocation.
func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	var iters, warmup int
	var dataDir, weightsDir string
	var python, peerScript, out, backend string
	var noPeer bool
	var childTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "bench [WORKLOAD...]",
		Short: "time training steps against the PyTorch peer on the same workloads; print a table, save JSON",
		Long: "Workloads: " + strings.Join(bench.Names(), ", ") + ` (default: all).
Each workload runs in a child process (peak RSS is its own), first ours, then the
PyTorch peer (bench/peers/torch_peer.py with --python, Debian's python3-torch),
in the same invocation. Results go to --out as bench-<date>-<host>.json.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				names = bench.Names()
			}
			for _, n := range names {
				_, isPipe := bench.Pipelines[n]
				if _, ok := bench.Workloads[n]; !ok && !isPipe {
					return fmt.Errorf("unknown workload %q; workloads: %s", n, strings.Join(bench.Names(), ", "))
				}
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			var results []bench.Result
			for _, n := range names {
				w := bench.Workloads[n]
				fmt.Fprintf(stderr, "bench %s: peco...\n", n)
				r, err := runChild(self, []string{"bench-worker", n, "--iters", strconv.Itoa(iters), "--warmup", strconv.Itoa(warmup), "--backend", backend, "--data", dataDir, "--weights", weightsDir}, childTimeout, stderr)
				if err != nil {
					return fmt.Errorf("bench %s (peco): %w", n, err)
				}
				results = append(results, r)
				if _, isPipe := bench.Pipelines[n]; noPeer || isPipe || w.Peer == "" {
					continue // no torchvision on this machine: the pipeline has no peer
				}
				fmt.Fprintf(stderr, "bench %s: torch...\n", n)
				peerArgs := []string{peerScript, w.Peer, strconv.Itoa(w.Layers), strconv.Itoa(w.Batch), strconv.Itoa(warmup), strconv.Itoa(iters)}
				if w.Data != "" {
					peerArgs = append(peerArgs, filepath.Join(dataDir, w.Data)) // the peer reads the same archive
				}
				p, err := runChild(python, peerArgs, childTimeout, io.Discard)
				if err != nil {
					return fmt.Errorf("bench %s (peer %s %s; install it with apt-get install python3-torch libopenblas0-pthread, or pass --no-peer): %w", n, python, peerScript, err)
				}
				p.Workload = n
				results = append(results, p)
			}
			host, _ := os.Hostname()
			report := map[string]any{
				"date": time.Now().UTC().Format(time.RFC3339), "host": host, "machine": machine(),
				"go": runtime.Version(), "gomlx": run.GoMLXVersion(), "peco": run.Version,
				"command": os.Args, "results": results,
			}
			fmt.Fprintf(stdout, "machine: %s, %s\n\n%s", machine(), runtime.Version(), bench.Table(results))
			if out == "" {
				return nil
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			b, err := json.MarshalIndent(report, "", "  ")
			if err != nil {
				return err
			}
			path := filepath.Join(out, fmt.Sprintf("bench-%s-%s.json", time.Now().UTC().Format("20060102-150405"), host))
			if err := ckpt.WriteFileAtomic(path, append(b, '\n')); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "\nsaved %s\n", path)
			return nil
		},
	}
	cmd.Flags().IntVar(&iters, "iters", 5, "timed steps per workload (the median is reported)")
	cmd.Flags().IntVar(&warmup, "warmup", 2, "untimed steps first (the first one compiles)")
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

// newBenchWorkerCmd is the hidden child that times one workload and prints
// its result as JSON.
func newBenchWorkerCmd(stdout io.Writer) *cobra.Command {
	var iters, warmup int
	var dataDir, weightsDir string
	var backend, cpuProfile string
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
			if p, ok := b.(interface{ OpProfile() string }); ok && p.OpProfile() != "" {
				// --backend cpu:profile: where each op type's time went.
				fmt.Fprintf(cmd.ErrOrStderr(), "op profile of %s (warm-up and timed steps):\n%s", w.Name, p.OpProfile())
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
	return cmd
}

// runChild runs a command that prints one JSON Result line last, and adds
// its peak RSS. An op profile the child printed (--backend cpu:profile) is
// copied to profileOut.
//
// The child is killed with SIGKILL after timeout (peco catches SIGTERM for a
// graceful stop, which a deadlocked backend never reaches).
func runChild(name string, args []string, timeout time.Duration, profileOut io.Writer) (bench.Result, error) {
	var r bench.Result
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
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
