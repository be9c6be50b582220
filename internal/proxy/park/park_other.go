//go:build !linux

package park

import "errors"

// poller: only Linux parks without a goroutine; New fails elsewhere and
// callers keep their goroutine per wait.
type poller struct{}

var errUnsupported = errors.New("park: not supported on this system")

func (p *poller) open(bool) error                    { return errUnsupported }
func (p *poller) arm(int, int32, uint32, bool) error { return errUnsupported }
func (p *poller) run(*Waiter)                        {}
func (p *poller) close() error                       { return nil }
