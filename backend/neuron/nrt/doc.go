// Package nrt binds the AWS Neuron runtime (libnrt.so.1) from Go through
// purego, without cgo.
//
// Open finds and loads the library and resolves every symbol up front (a
// missing required symbol is an error naming it). Lib.Init applies the
// runtime environment (NEURON_RT_VISIBLE_CORES and friends) with os.Setenv
// and then calls nrt_init; the resulting Runtime is the only one in the
// process until it is closed. Models (loaded NEFFs), tensors and tensor sets
// hang off the Runtime; after Runtime.Close every handle is inert: Free,
// Unload and Destroy do nothing and every other call returns ErrClosed
// without touching C.
//
// Ownership follows the C API: a TensorSet stores raw tensor pointers, so it
// keeps the Go Tensors it holds alive and Tensor.Free refuses (ErrInUse) while
// a live set references the tensor. Names handed to C live in C memory
// (malloc'd) for as long as their owner; NEFF bytes stay pinned until
// Unload. C never keeps a pointer into an unpinned Go object.
//
// C status codes surface as *StatusError, whose Is method maps them to the
// class sentinels (ErrResource, ErrRetryable, ErrNumeric, ErrInput,
// ErrFatalDevice, ErrClosed/ErrNotInitialized) behind the classifiers
// IsResource, IsRetryable, IsNumeric, IsInput, IsFatalDevice and IsLifecycle.
//
// The package is tested against a C stand-in for libnrt
// (backend/neuron/testdata/fakenrt, built by the tests with $CC) and against
// a Go function table that needs no C compiler.
package nrt
