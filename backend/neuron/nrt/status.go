package nrt

import (
	"errors"
	"fmt"
)

// Status is a libnrt NRT_STATUS code (nrt_status.h, SDK 2.28).
type Status int32

// The NRT_STATUS values.
const (
	StatusSuccess                  Status = 0
	StatusFailure                  Status = 1
	StatusInvalid                  Status = 2
	StatusInvalidHandle            Status = 3
	StatusResource                 Status = 4
	StatusTimeout                  Status = 5
	StatusHWError                  Status = 6
	StatusQueueFull                Status = 7
	StatusLoadNotEnoughNC          Status = 9
	StatusUnsupportedNEFFVersion   Status = 10
	StatusFailHostMemAlloc         Status = 11
	StatusUninitialized            Status = 13
	StatusClosed                   Status = 14
	StatusQueueEmpty               Status = 15
	StatusExecUnitUnrecoverable    Status = 101
	StatusExecBadInput             Status = 1002
	StatusExecCompletedWithNumErr  Status = 1003
	StatusExecCompletedWithErr     Status = 1004
	StatusExecNCBusy               Status = 1005
	StatusExecOOB                  Status = 1006
	StatusCollPending              Status = 1100
	StatusExecHWErrCollectives     Status = 1200
	StatusExecHWErrHBMUE           Status = 1201
	StatusExecHWErrNCUE            Status = 1202
	StatusExecHWErrDMAAbort        Status = 1203
	StatusExecSWNQOverflow         Status = 1204
	StatusExecHWErrRepairableHBMUE Status = 1205
	StatusNetworkProxyFailure      Status = 1206
)

var statusNames = map[Status]string{
	StatusSuccess:                  "NRT_SUCCESS",
	StatusFailure:                  "NRT_FAILURE",
	StatusInvalid:                  "NRT_INVALID",
	StatusInvalidHandle:            "NRT_INVALID_HANDLE",
	StatusResource:                 "NRT_RESOURCE",
	StatusTimeout:                  "NRT_TIMEOUT",
	StatusHWError:                  "NRT_HW_ERROR",
	StatusQueueFull:                "NRT_QUEUE_FULL",
	StatusLoadNotEnoughNC:          "NRT_LOAD_NOT_ENOUGH_NC",
	StatusUnsupportedNEFFVersion:   "NRT_UNSUPPORTED_NEFF_VERSION",
	StatusFailHostMemAlloc:         "NRT_FAIL_HOST_MEM_ALLOC",
	StatusUninitialized:            "NRT_UNINITIALIZED",
	StatusClosed:                   "NRT_CLOSED",
	StatusQueueEmpty:               "NRT_QUEUE_EMPTY",
	StatusExecUnitUnrecoverable:    "NRT_EXEC_UNIT_UNRECOVERABLE",
	StatusExecBadInput:             "NRT_EXEC_BAD_INPUT",
	StatusExecCompletedWithNumErr:  "NRT_EXEC_COMPLETED_WITH_NUM_ERR",
	StatusExecCompletedWithErr:     "NRT_EXEC_COMPLETED_WITH_ERR",
	StatusExecNCBusy:               "NRT_EXEC_NC_BUSY",
	StatusExecOOB:                  "NRT_EXEC_OOB",
	StatusCollPending:              "NRT_COLL_PENDING",
	StatusExecHWErrCollectives:     "NRT_EXEC_HW_ERR_COLLECTIVES",
	StatusExecHWErrHBMUE:           "NRT_EXEC_HW_ERR_HBM_UE",
	StatusExecHWErrNCUE:            "NRT_EXEC_HW_ERR_NC_UE",
	StatusExecHWErrDMAAbort:        "NRT_EXEC_HW_ERR_DMA_ABORT",
	StatusExecSWNQOverflow:         "NRT_EXEC_SW_NQ_OVERFLOW",
	StatusExecHWErrRepairableHBMUE: "NRT_EXEC_HW_ERR_REPAIRABLE_HBM_UE",
	StatusNetworkProxyFailure:      "NRT_NETWORK_PROXY_FAILURE",
}

// String returns the header name of s, or NRT_STATUS(n) for codes not in
// the table.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("NRT_STATUS(%d)", int32(s))
}

// Class sentinels: a *StatusError matches (errors.Is) the sentinel of its
// class, and a few codes also match a more specific sentinel.
var (
	// ErrResource: out of device memory or cores (4, 9, 11). Fatal for the
	// attempted load or allocation, not for the runtime.
	ErrResource = errors.New("nrt: out of device resources")
	// ErrNotEnoughCores: NRT_LOAD_NOT_ENOUGH_NC (9); also an ErrResource.
	ErrNotEnoughCores = errors.New("nrt: not enough neuron cores")
	// ErrRetryable: the call may succeed if repeated (7, 1005, and 5 at the
	// caller's discretion).
	ErrRetryable = errors.New("nrt: retryable")
	// ErrTimeout: NRT_TIMEOUT (5); also an ErrRetryable.
	ErrTimeout = errors.New("nrt: timeout")
	// ErrNumeric: the execution wrote its outputs but they hold NaN (1003).
	// Surface it to the caller; the runtime stays usable.
	ErrNumeric = errors.New("nrt: outputs contain numerical errors")
	// ErrInput: invalid arguments, bindings or shapes (2, 1002, 1006); a bug
	// in the caller or in this binding.
	ErrInput = errors.New("nrt: invalid input")
	// ErrInvalidHandle: NRT_INVALID_HANDLE (3), a stale or foreign handle.
	ErrInvalidHandle = errors.New("nrt: invalid handle")
	// ErrFatalDevice: the device failed (6, 101, 1004, 1200-1206). Stop
	// scheduling, then close and re-initialise or exit.
	ErrFatalDevice = errors.New("nrt: device failure")
	// ErrNotInitialized: a call before nrt_init (13).
	ErrNotInitialized = errors.New("nrt: runtime not initialized")
	// ErrClosed: a call after the runtime was closed (14, or any handle
	// method after Runtime.Close, which returns it without calling C).
	ErrClosed = errors.New("nrt: runtime closed")
)

// StatusError is a non-success status returned by a libnrt function.
type StatusError struct {
	Op   string // the C function, e.g. "nrt_execute"
	Code Status
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("nrt: %s: %s (%d)", e.Op, e.Code, int32(e.Code))
}

// Is reports whether target is the class (or specific) sentinel of e.Code.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrResource:
		return e.Code == StatusResource || e.Code == StatusLoadNotEnoughNC || e.Code == StatusFailHostMemAlloc
	case ErrNotEnoughCores:
		return e.Code == StatusLoadNotEnoughNC
	case ErrRetryable:
		return e.Code == StatusQueueFull || e.Code == StatusExecNCBusy || e.Code == StatusTimeout
	case ErrTimeout:
		return e.Code == StatusTimeout
	case ErrNumeric:
		return e.Code == StatusExecCompletedWithNumErr
	case ErrInput:
		return e.Code == StatusInvalid || e.Code == StatusExecBadInput || e.Code == StatusExecOOB
	case ErrInvalidHandle:
		return e.Code == StatusInvalidHandle
	case ErrFatalDevice:
		switch e.Code {
		case StatusHWError, StatusExecUnitUnrecoverable, StatusExecCompletedWithErr:
			return true
		}
		return e.Code >= StatusExecHWErrCollectives && e.Code <= StatusNetworkProxyFailure
	case ErrNotInitialized:
		return e.Code == StatusUninitialized
	case ErrClosed:
		return e.Code == StatusClosed
	}
	return false
}

// statusErr returns nil for NRT_SUCCESS and a *StatusError otherwise.
func statusErr(op string, code int32) error {
	if code == 0 {
		return nil
	}
	return &StatusError{Op: op, Code: Status(code)}
}

// IsResource reports an out-of-memory or not-enough-cores failure.
func IsResource(err error) bool { return errors.Is(err, ErrResource) }

// IsRetryable reports a busy or full queue, or a timeout.
func IsRetryable(err error) bool { return errors.Is(err, ErrRetryable) }

// IsNumeric reports an execution that completed with NaN in its outputs.
func IsNumeric(err error) bool { return errors.Is(err, ErrNumeric) }

// IsInput reports invalid arguments, bindings or shapes.
func IsInput(err error) bool { return errors.Is(err, ErrInput) }

// IsFatalDevice reports a device failure that needs the runtime closed.
func IsFatalDevice(err error) bool { return errors.Is(err, ErrFatalDevice) }

// IsLifecycle reports a call made before init or after close.
func IsLifecycle(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, ErrNotInitialized)
}
