package cli

import (
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dropPageCache asks the kernel to drop the cached pages of every file
// under dir (posix_fadvise DONTNEED; the files are synced, so their pages
// are clean), so that the next read comes from the device. It is best
// effort and reports whether it ran.
func dropPageCache(dir string) bool {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		f.Close()
		return nil
	})
	return true
}
