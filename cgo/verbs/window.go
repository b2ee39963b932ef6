package verbs

import (
	"fmt"
	"unsafe"
)

// MW is a type 2 memory window (ibv_alloc_mw(IBV_MW_TYPE_2)). It grants
// nothing until a BindWR posted on a queue pair of its protection domain
// binds it over part of a registration; from then on its rkey works only
// through that queue pair, until an InvalidateWR (or Close) revokes it. A
// type 2 window must be invalidated before it is bound again.
type MW struct {
	h  unsafe.Pointer
	pd *PD
	// rkey is the key the window was last bound with (or got at
	// allocation): what a bind or invalidation names it by.
	rkey uint32
}

// AllocMW allocates a type 2 memory window. It fails with an error
// matching ErrNotSupported's errno (EOPNOTSUPP) on devices without them.
func (pd *PD) AllocMW() (*MW, error) {
	if pd.h == nil {
		return nil, ErrClosed
	}
	h, rkey, err := cAllocMW(pd.h)
	if err != nil {
		return nil, err
	}
	pd.children.Add(1)
	handleOpened()
	return &MW{h: h, pd: pd, rkey: rkey}, nil
}

// RKey is the key of the window's latest bind as posted (or its key at
// allocation before any bind).
func (mw *MW) RKey() uint32 { return mw.rkey }

// NextRKey is mw's rkey with its low byte (the consumer-owned key)
// incremented, as ibv_inc_rkey does: a new bind with it invalidates every
// copy of the previous key that is still around.
func (mw *MW) NextRKey() uint32 { return NextRKey(mw.rkey) }

// NextRKey increments the consumer-owned low byte of rkey.
func NextRKey(rkey uint32) uint32 { return rkey&^0xff | (rkey+1)&0xff }

// BindWR builds the work request that binds mw over lengthBytes of mr from
// offsetBytes, with the given remote access, under rkey (usually
// mw.NextRKey()). Post it on the queue pair the window is for; once its
// completion (WCBindMW) arrived the window works through that queue pair
// only. mr must be registered with AccessMWBind (and AccessLocalWrite for
// a writable window). Building it records rkey as the window's key, which
// the binding's C side also does when the request is accepted.
func (mw *MW) BindWR(id uint64, mr *MR, offsetBytes, lengthBytes uint64, access Access, rkey uint32, flags SendFlags) (SendWR, error) {
	switch {
	case mw.h == nil || mr == nil || mr.h == nil:
		return SendWR{}, ErrClosed
	case mr.pd != mw.pd:
		return SendWR{}, fmt.Errorf("%w: BindWR: window and region in different protection domains", ErrInvalid)
	case lengthBytes == 0 || offsetBytes > mr.len || lengthBytes > mr.len-offsetBytes:
		return SendWR{}, fmt.Errorf("%w: BindWR [%d,+%d) outside the %d-byte registration", ErrInvalid, offsetBytes, lengthBytes, mr.len)
	case access&^accessKnown != 0 || access&AccessLocalWrite != 0:
		return SendWR{}, fmt.Errorf("%w: BindWR access %#x: want remote read, write or atomic only", ErrInvalid, uint32(access))
	}
	mw.rkey = rkey
	return SendWR{
		ID: id, Opcode: OpBindMW, Flags: flags,
		CompareAdd: uint64(uintptr(mw.h)), Swap: uint64(uintptr(mr.h)),
		LocalAddr: mr.addr + offsetBytes, RemoteAddr: lengthBytes,
		Length: uint32(access), RKey: rkey,
	}, nil
}

// InvalidateWR builds the work request that invalidates rkey (a window's
// bound key) on the local device: IBV_WR_LOCAL_INV. After its completion
// (WCLocalInv) a remote access with rkey fails, and a type 2 window may be
// bound again.
func InvalidateWR(id uint64, rkey uint32, flags SendFlags) SendWR {
	return SendWR{ID: id, Opcode: OpLocalInvalidate, Flags: flags, RKey: rkey}
}

// Close deallocates the window, which also revokes a bind still in force
// (one syscall, whatever the state of the queue pair it was bound to). Close
// a window bound to a queue pair before that queue pair: rxe keeps a
// destroyed queue pair alive while a window holds it.
func (mw *MW) Close() error {
	if mw.h == nil {
		return nil
	}
	if err := cDeallocMW(mw.h); err != nil {
		return err
	}
	mw.h = nil
	mw.pd.children.Add(-1)
	handleClosed()
	return nil
}
