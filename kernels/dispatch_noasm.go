//go:build !amd64 || !gc || noasm

package kernels

const haveAsm = false
