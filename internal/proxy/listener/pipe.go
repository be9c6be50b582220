package listener

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
)

// ListenPipe binds a unix domain socket listener at path, as Envoy binds
// an address.pipe: a stale socket file left by an earlier process is
// removed first (anything else at path is an error), mode (when not 0)
// sets the file's permissions, and a path starting with "@" is a Linux
// abstract socket (no file). Closing the listener removes the file.
func ListenPipe(path string, mode uint32) (net.Listener, error) {
	abstract := strings.HasPrefix(path, "@")
	if !abstract {
		if fi, err := os.Lstat(path); err == nil {
			if fi.Mode().Type() != fs.ModeSocket {
				return nil, fmt.Errorf("%s exists and is not a socket", path)
			}
			if err := os.Remove(path); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if mode != 0 && !abstract {
		if err := os.Chmod(path, fs.FileMode(mode)); err != nil {
			ln.Close()
			return nil, err
		}
	}
	return ln, nil
}
