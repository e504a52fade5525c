package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/peco-dev/peco/plugins/host"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
)

func newPluginsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "find, check and pin out-of-process plugins (peco-plugin-<name> on $PECO_PLUGIN_PATH, then ./plugins.d)",
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "list the plugins on the search path: name, kind, version, pin status, path (pinned ones are started to ask their Info)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lock, err := host.ReadLock(host.LockPath())
			if err != nil {
				return err
			}
			found := host.Discover()
			if len(found) == 0 {
				fmt.Fprintf(stdout, "no plugins in %v\n", host.SearchDirs())
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tPIN\tPATH")
			for _, f := range found {
				kind, version, pin := "?", "?", "not pinned"
				if sum, err := host.Hash(f.Path); err == nil && lock[f.Name] != "" {
					pin = "mismatch"
					if sum == lock[f.Name] {
						pin = "ok"
						if bin, err := host.Resolve(pb.Kind_KIND_UNSPECIFIED, f.Name, f.Path, "", host.DefaultSettings()); err == nil {
							kind, version = bin.Kind(), bin.Info.Version
						} else {
							kind = "error: " + err.Error()
						}
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, kind, version, pin, f.Path)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "pins: %s (pin one with `peco plugins hash PATH >> %s`)\n", host.LockPath(), host.LockPath())
			return nil
		},
	}
	check := &cobra.Command{
		Use:   "check PATH",
		Short: "start the plugin at PATH (it must be pinned), check its handshake, API version and schema, and print its Info",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := host.NameOf(args[0])
			if err != nil {
				return err
			}
			bin, err := host.Resolve(pb.Kind_KIND_UNSPECIFIED, name, args[0], "", host.DefaultSettings())
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "plugin %s %s: a %s plugin, API versions %v, sha256 %s\n  %s\n", bin.Name, bin.Info.Version, bin.Kind(), bin.Info.ApiVersions, bin.SHA256, bin.Info.Doc)
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			for _, f := range bin.Info.Schema {
				def := f.DefaultJson
				if def == "" {
					def = "(required)"
				}
				fmt.Fprintf(tw, "    %s\t%s\t= %s\t%s\n", f.Key, host.FieldTypeName(f.Type), def, f.Doc)
			}
			return tw.Flush()
		},
	}
	hash := &cobra.Command{
		Use:   "hash PATH",
		Short: "print the lock-file line of the plugin at PATH: `<sha256>  <name>` (append it to plugins.lock to pin it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := host.NameOf(args[0])
			if err != nil {
				return err
			}
			sum, err := host.Hash(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s  %s\n", sum, name)
			return nil
		},
	}
	cmd.AddCommand(list, check, hash)
	return cmd
}
