package testrig

import (
	"errors"
	"fmt"
	"net"
)

// FreePorts returns n distinct free TCP ports on 127.0.0.1: all are bound
// at once, then released. (Another process could take one before it is
// used; a readiness check then fails loudly.)
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var errs []error
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			errs = append(errs, fmt.Errorf("find a free port: %w", err))
			break
		}
		defer func() { errs = append(errs, l.Close()) }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return ports, nil
}
