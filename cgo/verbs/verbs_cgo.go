//go:build cgo && linux

package verbs

/*
#cgo LDFLAGS: -libverbs
#cgo noescape mu_cq_poll
#cgo nocallback mu_cq_poll
#cgo noescape mu_cq_poll_spin
#cgo nocallback mu_cq_poll_spin
#cgo noescape mu_post
#cgo nocallback mu_post
#cgo noescape mu_query_port
#cgo noescape mu_query_gid
#cgo noescape mu_qp_query_state
#cgo noescape mu_qp_cycle
#cgo noescape mu_qp_to_rtr
#cgo noescape mu_qp_to_rts
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// The Go mirrors must match the C structs byte for byte; these fail to
// compile if a size drifts (field offsets are checked in tests).
var (
	_ [unsafe.Sizeof(SendWR{}) - C.sizeof_mu_send_wr]byte
	_ [C.sizeof_mu_send_wr - unsafe.Sizeof(SendWR{})]byte
	_ [unsafe.Sizeof(WC{}) - C.sizeof_mu_wc]byte
	_ [C.sizeof_mu_wc - unsafe.Sizeof(WC{})]byte
	_ [unsafe.Sizeof(ConnParams{}) - C.sizeof_mu_conn_params]byte
	_ [C.sizeof_mu_conn_params - unsafe.Sizeof(ConnParams{})]byte
	_ [unsafe.Sizeof(PortAttr{}) - C.sizeof_mu_port_attr]byte
	_ [C.sizeof_mu_port_attr - unsafe.Sizeof(PortAttr{})]byte
	_ [unsafe.Sizeof(DeviceAttr{}) - C.sizeof_mu_device_attr]byte
	_ [C.sizeof_mu_device_attr - unsafe.Sizeof(DeviceAttr{})]byte
)

const maxDevices = 64
const deviceNameLen = 64

func cListDevices() ([]DeviceInfo, error) {
	names := (*C.char)(C.malloc(maxDevices * deviceNameLen))
	defer C.free(unsafe.Pointer(names))
	var guids [maxDevices]C.uint64_t
	n := C.mu_list_devices(names, deviceNameLen, &guids[0], maxDevices)
	if n < 0 {
		// No uverbs devices at all is "no devices", not an error.
		return nil, nil
	}
	out := make([]DeviceInfo, 0, min(int(n), maxDevices))
	for i := 0; i < int(n) && i < maxDevices; i++ {
		p := (*C.char)(unsafe.Add(unsafe.Pointer(names), i*deviceNameLen))
		out = append(out, DeviceInfo{Name: C.GoString(p), GUID: uint64(guids[i])})
	}
	return out, nil
}

func cOpen(name string) (unsafe.Pointer, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var cerr C.int
	h := C.mu_open(cname, &cerr)
	if h == nil {
		if name == "" {
			name = "(first)"
		}
		return nil, errnoErr("open device "+name, int(cerr))
	}
	return unsafe.Pointer(h), nil
}

func ctxOf(h unsafe.Pointer) *C.struct_ibv_context { return (*C.struct_ibv_context)(h) }

func cDeviceName(h unsafe.Pointer) string {
	return C.GoString(C.ibv_get_device_name(ctxOf(h).device))
}

func cCloseDevice(h unsafe.Pointer) error {
	if rc := C.ibv_close_device(ctxOf(h)); rc != 0 {
		return errnoErr("ibv_close_device", int(rc))
	}
	return nil
}

func cQueryDevice(h unsafe.Pointer) (DeviceAttr, error) {
	var a DeviceAttr
	if rc := C.mu_query_device(ctxOf(h), (*C.mu_device_attr)(unsafe.Pointer(&a))); rc != 0 {
		return a, errnoErr("ibv_query_device", int(rc))
	}
	return a, nil
}

func cQueryPort(h unsafe.Pointer, port uint8) (PortAttr, error) {
	var a PortAttr
	if rc := C.mu_query_port(ctxOf(h), C.uint8_t(port), (*C.mu_port_attr)(unsafe.Pointer(&a))); rc != 0 {
		return a, errnoErr(fmt.Sprintf("ibv_query_port(%d)", port), int(rc))
	}
	return a, nil
}

func cQueryGID(h unsafe.Pointer, port uint8, index int) (GID, error) {
	var g GID
	if rc := C.mu_query_gid(ctxOf(h), C.uint8_t(port), C.int(index), (*C.uint8_t)(unsafe.Pointer(&g[0]))); rc != 0 {
		return g, errnoErr(fmt.Sprintf("ibv_query_gid(port %d, index %d)", port, index), int(rc))
	}
	return g, nil
}

func cAllocPD(ctx unsafe.Pointer) (unsafe.Pointer, error) {
	var cerr C.int
	pd := C.mu_alloc_pd(ctxOf(ctx), &cerr)
	if pd == nil {
		return nil, errnoErr("ibv_alloc_pd", int(cerr))
	}
	return unsafe.Pointer(pd), nil
}

func cDeallocPD(h unsafe.Pointer) error {
	if rc := C.ibv_dealloc_pd((*C.struct_ibv_pd)(h)); rc != 0 {
		return errnoErr("ibv_dealloc_pd", int(rc))
	}
	return nil
}

func cRegMR(pd unsafe.Pointer, addr, length uint64, access Access) (unsafe.Pointer, uint32, uint32, error) {
	var cerr C.int
	mr := C.mu_reg_mr((*C.struct_ibv_pd)(pd), C.uintptr_t(addr), C.uint64_t(length), C.int(access), &cerr)
	if mr == nil {
		return nil, 0, 0, errnoErr(fmt.Sprintf("ibv_reg_mr(%d bytes)", length), int(cerr))
	}
	return unsafe.Pointer(mr), uint32(C.mu_mr_lkey(mr)), uint32(C.mu_mr_rkey(mr)), nil
}

func cAllocMW(pd unsafe.Pointer) (unsafe.Pointer, uint32, error) {
	var cerr C.int
	mw := C.mu_alloc_mw((*C.struct_ibv_pd)(pd), &cerr)
	if mw == nil {
		return nil, 0, errnoErr("ibv_alloc_mw(type 2)", int(cerr))
	}
	return unsafe.Pointer(mw), uint32(C.mu_mw_rkey(mw)), nil
}

func cDeallocMW(h unsafe.Pointer) error {
	if rc := C.ibv_dealloc_mw((*C.struct_ibv_mw)(h)); rc != 0 {
		return errnoErr("ibv_dealloc_mw", int(rc))
	}
	return nil
}

func cDeregMR(h unsafe.Pointer) error {
	if rc := C.ibv_dereg_mr((*C.struct_ibv_mr)(h)); rc != 0 {
		return errnoErr("ibv_dereg_mr", int(rc))
	}
	return nil
}

func cCreateCQ(ctx unsafe.Pointer, entries int) (unsafe.Pointer, error) {
	var cerr C.int
	cq := C.mu_cq_create(ctxOf(ctx), C.int(entries), &cerr)
	if cq == nil {
		return nil, errnoErr(fmt.Sprintf("ibv_create_cq(%d)", entries), int(cerr))
	}
	return unsafe.Pointer(cq), nil
}

func cDestroyCQ(h unsafe.Pointer) error {
	if rc := C.mu_cq_destroy((*C.mu_cq)(h)); rc != 0 {
		return errnoErr("ibv_destroy_cq", int(rc))
	}
	return nil
}

func cPoll(h unsafe.Pointer, out []WC) (int, error) {
	n := C.mu_cq_poll((*C.mu_cq)(h), (*C.mu_wc)(unsafe.Pointer(&out[0])), C.int(len(out)))
	if n < 0 {
		return 0, errPoll
	}
	return int(n), nil
}

func cPollSpin(h unsafe.Pointer, out []WC, spins int) (int, error) {
	n := C.mu_cq_poll_spin((*C.mu_cq)(h), (*C.mu_wc)(unsafe.Pointer(&out[0])), C.int(len(out)), C.int(spins))
	if n < 0 {
		return 0, errPoll
	}
	return int(n), nil
}

var errPoll = fmt.Errorf("verbs: ibv_poll_cq failed: %w", ErrInvalid)

func cCreateQP(pd, cq unsafe.Pointer, cfg QPConfig) (unsafe.Pointer, uint32, uint32, error) {
	var cerr C.int
	qp := C.mu_qp_create((*C.struct_ibv_pd)(pd), (*C.mu_cq)(cq), C.uint32_t(cfg.MaxSendWR), C.uint32_t(cfg.MaxInline), &cerr)
	if qp == nil {
		return nil, 0, 0, errnoErr(fmt.Sprintf("ibv_create_qp(RC, %d send WRs)", cfg.MaxSendWR), int(cerr))
	}
	return unsafe.Pointer(qp), uint32(C.mu_qp_num(qp)), uint32(C.mu_qp_max_inline(qp)), nil
}

func cDestroyQP(h unsafe.Pointer) error {
	if rc := C.mu_qp_destroy((*C.mu_qp)(h)); rc != 0 {
		return errnoErr("ibv_destroy_qp", int(rc))
	}
	return nil
}

func cPost(h unsafe.Pointer, wrs []SendWR) (int, error) {
	var posted C.int
	rc := C.mu_post((*C.mu_qp)(h), (*C.mu_send_wr)(unsafe.Pointer(&wrs[0])), C.int(len(wrs)), &posted)
	if rc != 0 {
		return int(posted), postErr(int(rc))
	}
	return int(posted), nil
}

func cToInit(h unsafe.Pointer, port uint8, access Access) error {
	if rc := C.mu_qp_to_init((*C.mu_qp)(h), C.uint8_t(port), C.uint32_t(access)); rc != 0 {
		return errnoErr("ibv_modify_qp(INIT)", int(rc))
	}
	return nil
}

func cToRTR(h unsafe.Pointer, p *ConnParams) error {
	if rc := C.mu_qp_to_rtr((*C.mu_qp)(h), (*C.mu_conn_params)(unsafe.Pointer(p))); rc != 0 {
		return errnoErr("ibv_modify_qp(RTR)", int(rc))
	}
	return nil
}

func cToRTS(h unsafe.Pointer, p *ConnParams) error {
	if rc := C.mu_qp_to_rts((*C.mu_qp)(h), (*C.mu_conn_params)(unsafe.Pointer(p))); rc != 0 {
		return errnoErr("ibv_modify_qp(RTS)", int(rc))
	}
	return nil
}

func cCycle(h unsafe.Pointer, p *ConnParams) error {
	var step C.int
	if rc := C.mu_qp_cycle((*C.mu_qp)(h), (*C.mu_conn_params)(unsafe.Pointer(p)), &step); rc != 0 {
		return errnoErr("ibv_modify_qp("+QPState(step).String()+")", int(rc))
	}
	return nil
}

func cSetState(h unsafe.Pointer, s QPState) error {
	if rc := C.mu_qp_set_state((*C.mu_qp)(h), C.int(s)); rc != 0 {
		return errnoErr("ibv_modify_qp("+s.String()+")", int(rc))
	}
	return nil
}

func cSetAccess(h unsafe.Pointer, a Access) error {
	if rc := C.mu_qp_set_access((*C.mu_qp)(h), C.uint32_t(a)); rc != 0 {
		return errnoErr("ibv_modify_qp(ACCESS_FLAGS)", int(rc))
	}
	return nil
}

func cQueryState(h unsafe.Pointer) (QPState, error) {
	var s C.int
	if rc := C.mu_qp_query_state((*C.mu_qp)(h), &s); rc != 0 {
		return 0, errnoErr("ibv_query_qp", int(rc))
	}
	return QPState(s), nil
}

// layoutMismatches lists Go mirror fields whose offset differs from the C
// struct's; tests require it to be empty.
func layoutMismatches() []string {
	var bad []string
	check := func(name string, goOff, cOff uintptr) {
		if goOff != cOff {
			bad = append(bad, fmt.Sprintf("%s: Go offset %d, C offset %d", name, goOff, cOff))
		}
	}
	var w SendWR
	var cw C.mu_send_wr
	check("SendWR.ID", unsafe.Offsetof(w.ID), unsafe.Offsetof(cw.wr_id))
	check("SendWR.LocalAddr", unsafe.Offsetof(w.LocalAddr), unsafe.Offsetof(cw.local_addr))
	check("SendWR.RemoteAddr", unsafe.Offsetof(w.RemoteAddr), unsafe.Offsetof(cw.remote_addr))
	check("SendWR.CompareAdd", unsafe.Offsetof(w.CompareAdd), unsafe.Offsetof(cw.compare_add))
	check("SendWR.Swap", unsafe.Offsetof(w.Swap), unsafe.Offsetof(cw.swap))
	check("SendWR.LKey", unsafe.Offsetof(w.LKey), unsafe.Offsetof(cw.lkey))
	check("SendWR.RKey", unsafe.Offsetof(w.RKey), unsafe.Offsetof(cw.rkey))
	check("SendWR.Length", unsafe.Offsetof(w.Length), unsafe.Offsetof(cw.length))
	check("SendWR.Opcode", unsafe.Offsetof(w.Opcode), unsafe.Offsetof(cw.opcode))
	check("SendWR.Flags", unsafe.Offsetof(w.Flags), unsafe.Offsetof(cw.flags))
	var c WC
	var cc C.mu_wc
	check("WC.ID", unsafe.Offsetof(c.ID), unsafe.Offsetof(cc.wr_id))
	check("WC.Status", unsafe.Offsetof(c.Status), unsafe.Offsetof(cc.status))
	check("WC.Opcode", unsafe.Offsetof(c.Opcode), unsafe.Offsetof(cc.opcode))
	check("WC.QPNum", unsafe.Offsetof(c.QPNum), unsafe.Offsetof(cc.qp_num))
	check("WC.VendorErr", unsafe.Offsetof(c.VendorErr), unsafe.Offsetof(cc.vendor_err))
	check("WC.ByteLen", unsafe.Offsetof(c.ByteLen), unsafe.Offsetof(cc.byte_len))
	var p ConnParams
	var cp C.mu_conn_params
	check("ConnParams.DGID", unsafe.Offsetof(p.DGID), unsafe.Offsetof(cp.dgid))
	check("ConnParams.DestQPN", unsafe.Offsetof(p.DestQPN), unsafe.Offsetof(cp.dest_qpn))
	check("ConnParams.RQPSN", unsafe.Offsetof(p.RQPSN), unsafe.Offsetof(cp.rq_psn))
	check("ConnParams.SQPSN", unsafe.Offsetof(p.SQPSN), unsafe.Offsetof(cp.sq_psn))
	check("ConnParams.Access", unsafe.Offsetof(p.Access), unsafe.Offsetof(cp.access))
	check("ConnParams.Port", unsafe.Offsetof(p.Port), unsafe.Offsetof(cp.port))
	check("ConnParams.SGIDIndex", unsafe.Offsetof(p.SGIDIndex), unsafe.Offsetof(cp.sgid_index))
	check("ConnParams.HopLimit", unsafe.Offsetof(p.HopLimit), unsafe.Offsetof(cp.hop_limit))
	check("ConnParams.PathMTU", unsafe.Offsetof(p.PathMTU), unsafe.Offsetof(cp.path_mtu))
	check("ConnParams.Timeout", unsafe.Offsetof(p.Timeout), unsafe.Offsetof(cp.timeout))
	check("ConnParams.RetryCount", unsafe.Offsetof(p.RetryCount), unsafe.Offsetof(cp.retry_cnt))
	check("ConnParams.RNRRetry", unsafe.Offsetof(p.RNRRetry), unsafe.Offsetof(cp.rnr_retry))
	check("ConnParams.MinRNRTimer", unsafe.Offsetof(p.MinRNRTimer), unsafe.Offsetof(cp.min_rnr_timer))
	check("ConnParams.MaxRdAtomic", unsafe.Offsetof(p.MaxRdAtomic), unsafe.Offsetof(cp.max_rd_atomic))
	check("ConnParams.MaxDestRdAtomic", unsafe.Offsetof(p.MaxDestRdAtomic), unsafe.Offsetof(cp.max_dest_rd_atomic))
	var pa PortAttr
	var cpa C.mu_port_attr
	check("PortAttr.ActiveMTU", unsafe.Offsetof(pa.ActiveMTU), unsafe.Offsetof(cpa.active_mtu))
	check("PortAttr.LinkLayer", unsafe.Offsetof(pa.LinkLayer), unsafe.Offsetof(cpa.link_layer))
	check("PortAttr.GIDTableLen", unsafe.Offsetof(pa.GIDTableLen), unsafe.Offsetof(cpa.gid_tbl_len))
	var da DeviceAttr
	var cda C.mu_device_attr
	check("DeviceAttr.MaxQPWR", unsafe.Offsetof(da.MaxQPWR), unsafe.Offsetof(cda.max_qp_wr))
	check("DeviceAttr.MaxQPInitRdAtom", unsafe.Offsetof(da.MaxQPInitRdAtom), unsafe.Offsetof(cda.max_qp_init_rd_atom))
	check("DeviceAttr.PhysPortCount", unsafe.Offsetof(da.PhysPortCount), unsafe.Offsetof(cda.phys_port_cnt))
	check("DeviceAttr.MaxMW", unsafe.Offsetof(da.MaxMW), unsafe.Offsetof(cda.max_mw))
	check("DeviceAttr.DeviceCapFlags", unsafe.Offsetof(da.DeviceCapFlags), unsafe.Offsetof(cda.device_cap_flags))
	return bad
}
