package verbs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/rdmaconsensus/mu/rdma"
)

var (
	// ErrNotSupported is rdma.ErrNotSupported: no cgo, not Linux, or no
	// libibverbs device.
	ErrNotSupported = rdma.ErrNotSupported
	// ErrNoDevice: libibverbs found no RDMA device (or none by that name).
	// It matches ErrNotSupported too.
	ErrNoDevice = fmt.Errorf("verbs: no RDMA device: %w", rdma.ErrNotSupported)
	// ErrClosed is rdma.ErrClosed: the handle was closed.
	ErrClosed = rdma.ErrClosed
	// ErrBusy: a handle still has open children (close QPs before their CQ
	// and PD, MRs before their PD, everything before the Context).
	ErrBusy = errors.New("verbs: handle still in use")
	// ErrInvalid: an argument is out of range; the message names it.
	ErrInvalid = errors.New("verbs: invalid argument")
)

// errnoErr wraps a libibverbs return code (an errno) with what failed. ENOMEM
// from posting means the send queue is full and also matches
// rdma.ErrQueueFull.
func errnoErr(op string, rc int) error {
	if rc < 0 {
		rc = -rc
	}
	e := syscall.Errno(rc)
	if e == syscall.ENODEV {
		return fmt.Errorf("verbs: %s: %w (%w)", op, ErrNoDevice, e)
	}
	return fmt.Errorf("verbs: %s: %w", op, e)
}

func postErr(rc int) error {
	if rc == int(syscall.ENOMEM) {
		return fmt.Errorf("verbs: ibv_post_send: %w (%w)", rdma.ErrQueueFull, syscall.ENOMEM)
	}
	return errnoErr("ibv_post_send", rc)
}

// WCStatus is an ibv_wc_status value.
type WCStatus uint32

const (
	WCSuccess          WCStatus = 0  // IBV_WC_SUCCESS
	WCLocLenErr        WCStatus = 1  // IBV_WC_LOC_LEN_ERR
	WCLocQPOpErr       WCStatus = 2  // IBV_WC_LOC_QP_OP_ERR
	WCLocEECOpErr      WCStatus = 3  // IBV_WC_LOC_EEC_OP_ERR
	WCLocProtErr       WCStatus = 4  // IBV_WC_LOC_PROT_ERR
	WCWRFlushErr       WCStatus = 5  // IBV_WC_WR_FLUSH_ERR
	WCMWBindErr        WCStatus = 6  // IBV_WC_MW_BIND_ERR
	WCBadRespErr       WCStatus = 7  // IBV_WC_BAD_RESP_ERR
	WCLocAccessErr     WCStatus = 8  // IBV_WC_LOC_ACCESS_ERR
	WCRemInvReqErr     WCStatus = 9  // IBV_WC_REM_INV_REQ_ERR
	WCRemAccessErr     WCStatus = 10 // IBV_WC_REM_ACCESS_ERR
	WCRemOpErr         WCStatus = 11 // IBV_WC_REM_OP_ERR
	WCRetryExcErr      WCStatus = 12 // IBV_WC_RETRY_EXC_ERR
	WCRNRRetryExcErr   WCStatus = 13 // IBV_WC_RNR_RETRY_EXC_ERR
	WCLocRDDViolErr    WCStatus = 14 // IBV_WC_LOC_RDD_VIOL_ERR
	WCRemInvRdReqErr   WCStatus = 15 // IBV_WC_REM_INV_RD_REQ_ERR
	WCRemAbortErr      WCStatus = 16 // IBV_WC_REM_ABORT_ERR
	WCInvEECNErr       WCStatus = 17 // IBV_WC_INV_EECN_ERR
	WCInvEECStateErr   WCStatus = 18 // IBV_WC_INV_EEC_STATE_ERR
	WCFatalErr         WCStatus = 19 // IBV_WC_FATAL_ERR
	WCRespTimeoutErr   WCStatus = 20 // IBV_WC_RESP_TIMEOUT_ERR
	WCGeneralErr       WCStatus = 21 // IBV_WC_GENERAL_ERR
	WCTMErr            WCStatus = 22 // IBV_WC_TM_ERR
	WCTMRndvIncomplete WCStatus = 23 // IBV_WC_TM_RNDV_INCOMPLETE
	numWCStatus                 = 24
)

// Names as ibv_wc_status_str gives them, so logs read like verbs' own.
var wcStatusNames = [numWCStatus]string{
	WCSuccess:          "success",
	WCLocLenErr:        "local length error",
	WCLocQPOpErr:       "local QP operation error",
	WCLocEECOpErr:      "local EE context operation error",
	WCLocProtErr:       "local protection error",
	WCWRFlushErr:       "Work Request Flushed Error",
	WCMWBindErr:        "memory management operation error",
	WCBadRespErr:       "bad response error",
	WCLocAccessErr:     "local access error",
	WCRemInvReqErr:     "remote invalid request error",
	WCRemAccessErr:     "remote access error",
	WCRemOpErr:         "remote operation error",
	WCRetryExcErr:      "transport retry counter exceeded",
	WCRNRRetryExcErr:   "RNR retry counter exceeded",
	WCLocRDDViolErr:    "local RDD violation error",
	WCRemInvRdReqErr:   "remote invalid RD request",
	WCRemAbortErr:      "aborted error",
	WCInvEECNErr:       "invalid EE context number",
	WCInvEECStateErr:   "invalid EE context state",
	WCFatalErr:         "fatal error",
	WCRespTimeoutErr:   "response timeout error",
	WCGeneralErr:       "general error",
	WCTMErr:            "TM error",
	WCTMRndvIncomplete: "TM software rendezvous",
}

var wcStatusIdents = [numWCStatus]string{
	"IBV_WC_SUCCESS", "IBV_WC_LOC_LEN_ERR", "IBV_WC_LOC_QP_OP_ERR",
	"IBV_WC_LOC_EEC_OP_ERR", "IBV_WC_LOC_PROT_ERR", "IBV_WC_WR_FLUSH_ERR",
	"IBV_WC_MW_BIND_ERR", "IBV_WC_BAD_RESP_ERR", "IBV_WC_LOC_ACCESS_ERR",
	"IBV_WC_REM_INV_REQ_ERR", "IBV_WC_REM_ACCESS_ERR", "IBV_WC_REM_OP_ERR",
	"IBV_WC_RETRY_EXC_ERR", "IBV_WC_RNR_RETRY_EXC_ERR", "IBV_WC_LOC_RDD_VIOL_ERR",
	"IBV_WC_REM_INV_RD_REQ_ERR", "IBV_WC_REM_ABORT_ERR", "IBV_WC_INV_EECN_ERR",
	"IBV_WC_INV_EEC_STATE_ERR", "IBV_WC_FATAL_ERR", "IBV_WC_RESP_TIMEOUT_ERR",
	"IBV_WC_GENERAL_ERR", "IBV_WC_TM_ERR", "IBV_WC_TM_RNDV_INCOMPLETE",
}

func (s WCStatus) String() string {
	if s < numWCStatus {
		return wcStatusNames[s]
	}
	return fmt.Sprintf("wc-status(%d)", uint32(s))
}

// Ident is the libibverbs enumerator name, e.g. "IBV_WC_REM_INV_REQ_ERR".
func (s WCStatus) Ident() string {
	if s < numWCStatus {
		return wcStatusIdents[s]
	}
	return fmt.Sprintf("IBV_WC_%d", uint32(s))
}

// RDMA maps a verbs status onto the protocol's coarser rdma.Status. The
// protocol acts on four failure kinds: refused by the target (permission
// revoked), bad key or bounds, peer silent, connection already in error;
// everything else is a local fault.
func (s WCStatus) RDMA() rdma.Status {
	switch s {
	case WCSuccess:
		return rdma.StatusSuccess
	case WCRemInvReqErr, WCRemInvRdReqErr:
		return rdma.StatusRemoteInvalidRequest
	case WCRemAccessErr:
		return rdma.StatusRemoteAccessError
	case WCRetryExcErr, WCRNRRetryExcErr:
		return rdma.StatusRetryExceeded
	case WCWRFlushErr:
		return rdma.StatusFlushed
	}
	return rdma.StatusLocalError
}

// Err returns nil for success, else a *WCError.
func (s WCStatus) Err() error {
	if s == WCSuccess {
		return nil
	}
	return &WCError{Status: s}
}

// WCError is a failed work completion. errors.Is matches it against the
// rdma sentinel of its mapped status (rdma.ErrRemoteInvalidRequest, ...).
type WCError struct {
	Status    WCStatus
	VendorErr uint32
}

func (e *WCError) Error() string {
	return fmt.Sprintf("verbs: completion: %s (%s, vendor error %#x)", e.Status, e.Status.Ident(), e.VendorErr)
}

func (e *WCError) Is(target error) bool {
	ce := rdma.CompletionError{Status: e.Status.RDMA()}
	return ce.Is(target)
}

// Err returns nil for a successful completion, else a *WCError.
func (wc *WC) Err() error {
	if wc.Status == WCSuccess {
		return nil
	}
	return &WCError{Status: wc.Status, VendorErr: wc.VendorErr}
}
