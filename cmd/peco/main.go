// Command peco runs PeCo/BEiT experiments described by YAML configs:
// tokenizer training, masked-image-modeling pre-training and downstream
// tasks, every part a registered component.
//
//	peco run CONFIG [--set key=value]... [--out DIR] [--backend SPEC] [--resume]
//	peco config print CONFIG [--set key=value]...
//	peco components [KIND]
//	peco plugins list | check PATH | hash PATH
//	peco version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	_ "github.com/peco-dev/peco/builtin"
	"github.com/peco-dev/peco/core/run"
	"github.com/peco-dev/peco/plugins/host"
	"github.com/peco-dev/peco/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd(os.Stdout, os.Stderr)
	err := root.ExecuteContext(ctx)
	host.Cleanup() // no plugin process outlives peco
	if err != nil {
		fmt.Fprintln(os.Stderr, "peco:", err)
		os.Exit(1)
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "peco",
		Short:         "PeCo/BEiT: visual tokenizers, masked image modeling and downstream tasks, from YAML configs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(stdout, stderr), newConfigCmd(stdout), newComponentsCmd(stdout), newVersionCmd(stdout))
	root.AddCommand(newTokenizeCmd(stdout))
	root.AddCommand(newBenchCmd(stdout, stderr), newBenchWorkerCmd(stdout))
	root.AddCommand(newClassifyCmd(stdout))
	root.AddCommand(newPluginsCmd(stdout))
	root.AddCommand(newSweepCmd(stdout, stderr))
	root.AddCommand(newResultsCmd(stdout))
	root.AddCommand(newEvalCmd(stdout))
	root.AddCommand(newDoctorCmd(stdout))
	return root
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	var sets []string
	var cpuProfile string
	var opts run.RunOptions
	var backendSpec string
	cmd := &cobra.Command{
		Use:   "run CONFIG",
		Short: "run the experiment a config describes, in a run directory",
		Long: `Run loads CONFIG (with its _base_ chain), applies --set overrides, decodes
it strictly (nothing runs until the whole config is valid), then runs its task
in a run directory holding config.yaml (the resolved config), meta.json,
metrics.jsonl, checkpoints/ and images/.

The backend is --backend, else $PECO_BACKEND, else "cpu" (peco's CPU backend);
"go" is GoMLX's pure-Go backend; "xla:<plugin>" selects XLA through a PJRT
plugin (GPU) in cgo builds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, resolved, err := run.LoadExperiment(args[0], sets)
			if err != nil {
				return err
			}
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
			backend, desc, err := OpenBackend(backendSpec)
			if err != nil {
				return err
			}
			defer backend.Finalize()
			opts.Backend, opts.Device = backend, desc
			opts.Command = os.Args
			opts.Stdout, opts.Stderr = stdout, stderr
			dir, err := run.RunExperiment(cmd.Context(), exp, resolved, opts)
			if rec := (*run.RecordedError)(nil); errors.As(err, &rec) {
				return fmt.Errorf("run %s failed (recorded in %s): %w", dir, rec.Meta, err)
			}
			return err
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a config value: key.path=value (YAML scalar, list or map); repeatable")
	cmd.Flags().StringVar(&opts.Out, "out", "", "run directory (default runs/<name>/<timestamp>)")
	cmd.Flags().StringVar(&backendSpec, "backend", "", `compute backend: "cpu", "go" or "xla:<plugin name or path>" (default $PECO_BACKEND or cpu)`)
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) of the run to this file")
	cmd.Flags().BoolVar(&opts.Resume, "resume", false, "continue the run in --out (default: the newest run of this config) from its newest checkpoint; the config must be the same")
	return cmd
}

func newConfigCmd(stdout io.Writer) *cobra.Command {
	cfg := &cobra.Command{Use: "config", Short: "inspect configs"}
	var sets []string
	print := &cobra.Command{
		Use:   "print CONFIG",
		Short: "print the fully resolved config: _base_ merged, --set applied, every default filled in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, resolved, err := run.LoadExperiment(args[0], sets)
			if err != nil {
				return err
			}
			_, err = stdout.Write(resolved)
			return err
		},
	}
	print.Flags().StringArrayVar(&sets, "set", nil, "override a config value: key.path=value; repeatable")
	cfg.AddCommand(print)
	return cfg
}

func newComponentsCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "components [KIND]",
		Short: "list the registered components (of one kind) with their config keys, types, defaults and docs",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cat := registry.Catalog()
			if len(args) == 1 {
				var kinds []string
				for _, k := range cat {
					kinds = append(kinds, string(k.Kind))
					if string(k.Kind) == args[0] {
						return printKind(stdout, k, true)
					}
				}
				sort.Strings(kinds)
				return fmt.Errorf("unknown component kind %q; kinds: %s", args[0], strings.Join(kinds, ", "))
			}
			for _, k := range cat {
				if err := printKind(stdout, k, false); err != nil {
					return err
				}
			}
			fmt.Fprintln(stdout, "\n`peco components KIND` shows each component's config keys.")
			return nil
		},
	}
}

func printKind(w io.Writer, k registry.KindInfo, fields bool) error {
	fmt.Fprintf(w, "%s: %s\n", k.Kind, k.Doc)
	if len(k.Entries) == 0 {
		fmt.Fprintln(w, "  (none registered yet)")
	}
	for _, e := range k.Entries {
		fmt.Fprintf(w, "  %-16s %s\n", e.Name, e.Doc)
		if !fields {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, f := range registry.Fields(e.NewConfig()) {
			fmt.Fprintf(tw, "      %s\t%s\t= %s\t%s\n", f.Key, f.Type, f.Default, f.Doc)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print peco's, Go's and GoMLX's versions and the available backends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "peco %s (%s, %s/%s)\n", run.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			fmt.Fprintf(stdout, "gomlx %s\nbackends: %s\n", run.GoMLXVersion(), strings.Join(Backends(), ", "))
			return nil
		},
	}
}
