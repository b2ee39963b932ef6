//go:build !cgo || !linux

package verbs

import "unsafe"

// Without cgo or off Linux there is no libibverbs: every call reports
// ErrNotSupported, and Devices reports none.

func cListDevices() ([]DeviceInfo, error)                   { return nil, ErrNotSupported }
func cOpen(string) (unsafe.Pointer, error)                  { return nil, ErrNotSupported }
func cDeviceName(unsafe.Pointer) string                     { return "" }
func cCloseDevice(unsafe.Pointer) error                     { return ErrNotSupported }
func cQueryDevice(unsafe.Pointer) (DeviceAttr, error)       { return DeviceAttr{}, ErrNotSupported }
func cQueryPort(unsafe.Pointer, uint8) (PortAttr, error)    { return PortAttr{}, ErrNotSupported }
func cQueryGID(unsafe.Pointer, uint8, int) (GID, error)     { return GID{}, ErrNotSupported }
func cAllocPD(unsafe.Pointer) (unsafe.Pointer, error)       { return nil, ErrNotSupported }
func cDeallocPD(unsafe.Pointer) error                       { return ErrNotSupported }
func cCreateCQ(unsafe.Pointer, int) (unsafe.Pointer, error) { return nil, ErrNotSupported }
func cDestroyCQ(unsafe.Pointer) error                       { return ErrNotSupported }
func cPoll(unsafe.Pointer, []WC) (int, error)               { return 0, ErrNotSupported }
func cPollSpin(unsafe.Pointer, []WC, int) (int, error)      { return 0, ErrNotSupported }
func cDestroyQP(unsafe.Pointer) error                       { return ErrNotSupported }
func cPost(unsafe.Pointer, []SendWR) (int, error)           { return 0, ErrNotSupported }
func cToInit(unsafe.Pointer, uint8, Access) error           { return ErrNotSupported }
func cToRTR(unsafe.Pointer, *ConnParams) error              { return ErrNotSupported }
func cToRTS(unsafe.Pointer, *ConnParams) error              { return ErrNotSupported }
func cCycle(unsafe.Pointer, *ConnParams) error              { return ErrNotSupported }
func cSetState(unsafe.Pointer, QPState) error               { return ErrNotSupported }
func cSetAccess(unsafe.Pointer, Access) error               { return ErrNotSupported }
func cQueryState(unsafe.Pointer) (QPState, error)           { return 0, ErrNotSupported }
func cDeregMR(unsafe.Pointer) error                         { return ErrNotSupported }
func cDeallocMW(unsafe.Pointer) error                       { return ErrNotSupported }

func cAllocMW(unsafe.Pointer) (unsafe.Pointer, uint32, error) { return nil, 0, ErrNotSupported }

func cRegMR(unsafe.Pointer, uint64, uint64, Access) (unsafe.Pointer, uint32, uint32, error) {
	return nil, 0, 0, ErrNotSupported
}

func cCreateQP(unsafe.Pointer, unsafe.Pointer, QPConfig) (unsafe.Pointer, uint32, uint32, error) {
	return nil, 0, 0, ErrNotSupported
}

func layoutMismatches() []string { return nil }
