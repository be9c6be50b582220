//go:build !unix

package sockio

import "syscall"

const supported = false

func rawRead(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.ENOSYS }
func rawWrite(uintptr, []byte) (int, syscall.Errno) { return 0, syscall.ENOSYS }
func rawPeek(uintptr, []byte) (int, syscall.Errno)  { return 0, syscall.ENOSYS }
