package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrTargetRefused: Options.CheckTarget refused the address a direct
// connection to an origin was about to connect to; the reason follows in
// the message.
var ErrTargetRefused = errors.New("upstream: target refused")

// originDialer is the dialer of direct connections to origins: with
// Options.CheckTarget set, it checks every address it connects to after
// name resolution, so what was checked is what is dialed (no DNS rebinding
// between a check and the dial). Connections to upstream proxies use
// dialer, unchecked.
func (o Options) originDialer() *net.Dialer {
	d := o.dialer()
	check := o.CheckTarget
	if check == nil {
		return d
	}
	d.ControlContext = func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: address %q: %w", ErrTargetRefused, address, err)
		}
		if err := check(ap); err != nil {
			return fmt.Errorf("%w: %w", ErrTargetRefused, err)
		}
		return nil
	}
	return d
}
