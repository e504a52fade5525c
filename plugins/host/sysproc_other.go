//go:build !linux

package host

import "syscall"

// sysProcAttr has no parent-death signal outside Linux: plugins end when
// the host ends them (go-plugin's managed clients) or when their
// connection drops.
func sysProcAttr() *syscall.SysProcAttr { return nil }
