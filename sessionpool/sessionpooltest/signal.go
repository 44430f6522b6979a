package sessionpooltest

import "syscall"

var sigterm = syscall.SIGTERM
