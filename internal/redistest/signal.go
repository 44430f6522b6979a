package redistest

import "syscall"

var sigterm = syscall.SIGTERM
