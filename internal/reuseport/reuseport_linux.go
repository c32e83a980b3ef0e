package reuseport

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

const supported = true

// control sets SO_REUSEPORT before the socket is bound.
func control(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return fmt.Errorf("reuseport: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("reuseport: SO_REUSEPORT: %w", serr)
	}
	return nil
}
