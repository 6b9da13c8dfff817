package kernels

import "runtime"

const goarch = runtime.GOARCH
