//go:build unix

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// lockStore takes the advisory lock of a model's state directory, so that
// two processes never open one store at once (opening sweeps block files
// no snapshot holds yet, which another process may be writing). It fails
// at once if another process holds it; the returned func releases it.
func lockStore(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", errStoreBusy, dir)
		}
		return nil, fmt.Errorf("lock state directory: %w", err)
	}
	return func() { f.Close() }, nil
}
