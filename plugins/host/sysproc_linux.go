package host

import "syscall"

// sysProcAttr makes the kernel kill a plugin when its host dies, also by
// SIGKILL (which leaves the host no chance to clean up).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
