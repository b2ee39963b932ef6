package verbs

import (
	"errors"
	"testing"

	"github.com/rdmaconsensus/mu/rdma"
)

func TestWCStatusMapping(t *testing.T) {
	cases := []struct {
		st       WCStatus
		want     rdma.Status
		sentinel error
		ident    string
	}{
		{WCRemInvReqErr, rdma.StatusRemoteInvalidRequest, rdma.ErrRemoteInvalidRequest, "IBV_WC_REM_INV_REQ_ERR"},
		{WCRemAccessErr, rdma.StatusRemoteAccessError, rdma.ErrRemoteAccess, "IBV_WC_REM_ACCESS_ERR"},
		{WCRetryExcErr, rdma.StatusRetryExceeded, rdma.ErrRetryExceeded, "IBV_WC_RETRY_EXC_ERR"},
		{WCRNRRetryExcErr, rdma.StatusRetryExceeded, rdma.ErrRetryExceeded, "IBV_WC_RNR_RETRY_EXC_ERR"},
		{WCWRFlushErr, rdma.StatusFlushed, rdma.ErrFlushed, "IBV_WC_WR_FLUSH_ERR"},
		{WCLocProtErr, rdma.StatusLocalError, rdma.ErrLocal, "IBV_WC_LOC_PROT_ERR"},
		{WCLocLenErr, rdma.StatusLocalError, rdma.ErrLocal, "IBV_WC_LOC_LEN_ERR"},
		{WCRemOpErr, rdma.StatusLocalError, rdma.ErrLocal, "IBV_WC_REM_OP_ERR"},
		{WCGeneralErr, rdma.StatusLocalError, rdma.ErrLocal, "IBV_WC_GENERAL_ERR"},
	}
	all := []error{rdma.ErrRemoteInvalidRequest, rdma.ErrRemoteAccess, rdma.ErrRetryExceeded, rdma.ErrFlushed, rdma.ErrLocal}
	for _, c := range cases {
		if got := c.st.RDMA(); got != c.want {
			t.Errorf("%s.RDMA() = %v, want %v", c.st.Ident(), got, c.want)
		}
		if c.st.Ident() != c.ident {
			t.Errorf("Ident(%d) = %s, want %s", c.st, c.st.Ident(), c.ident)
		}
		wc := WC{Status: c.st, VendorErr: 0x12}
		err := wc.Err()
		for _, s := range all {
			if got := errors.Is(err, s); got != (s == c.sentinel) {
				t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
			}
		}
		var we *WCError
		if !errors.As(err, &we) || we.Status != c.st || we.VendorErr != 0x12 {
			t.Errorf("errors.As(%v) = %+v", err, we)
		}
	}
	if WCSuccess.Err() != nil || WCSuccess.RDMA() != rdma.StatusSuccess {
		t.Error("success must map to nil / StatusSuccess")
	}
	if s := WCStatus(99).String(); s != "wc-status(99)" {
		t.Errorf("unknown status string %q", s)
	}
	if got := WCRemInvReqErr.Err().Error(); got != "verbs: completion: remote invalid request error (IBV_WC_REM_INV_REQ_ERR, vendor error 0x0)" {
		t.Errorf("error text %q", got)
	}
}

func TestLayoutMatchesC(t *testing.T) {
	for _, m := range layoutMismatches() {
		t.Error(m)
	}
}

func TestMTU(t *testing.T) {
	want := map[MTU]int{MTU256: 256, MTU512: 512, MTU1024: 1024, MTU2048: 2048, MTU4096: 4096, 0: 0, 6: 0}
	for m, b := range want {
		if m.Bytes() != b {
			t.Errorf("MTU(%d).Bytes() = %d, want %d", m, m.Bytes(), b)
		}
	}
}

func TestGID(t *testing.T) {
	g := GID{10: 0xff, 11: 0xff, 12: 10, 13: 0, 14: 2, 15: 15}
	if !g.IPv4() || g.String() != "::ffff:10.0.2.15" {
		t.Errorf("GID %v IPv4=%v", g, g.IPv4())
	}
	ll := GID{0: 0xfe, 1: 0x80, 15: 1}
	if ll.IPv4() || ll.IsZero() || !(GID{}).IsZero() {
		t.Error("link-local GID misclassified")
	}
}

func validParams() ConnParams {
	return ConnParams{
		DGID: GID{10: 0xff, 11: 0xff, 12: 10, 15: 1}, DestQPN: 17, RQPSN: 1, SQPSN: 2,
		Access: AccessRemoteWrite, Port: 1, SGIDIndex: 1, HopLimit: 64, PathMTU: MTU1024,
		Timeout: 14, RetryCount: 7, RNRRetry: 7, MinRNRTimer: 12, MaxRdAtomic: 1, MaxDestRdAtomic: 1,
	}
}

func TestConnParamsValidate(t *testing.T) {
	p := validParams()
	if err := p.Validate(); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	bad := map[string]func(*ConnParams){
		"DestQPN":     func(p *ConnParams) { p.DestQPN = 1 << 24 },
		"RQPSN":       func(p *ConnParams) { p.RQPSN = 1 << 24 },
		"SQPSN":       func(p *ConnParams) { p.SQPSN = 1 << 25 },
		"Access":      func(p *ConnParams) { p.Access = 0x100 },
		"Port":        func(p *ConnParams) { p.Port = 0 },
		"PathMTU":     func(p *ConnParams) { p.PathMTU = 6 },
		"Timeout":     func(p *ConnParams) { p.Timeout = 32 },
		"RetryCount":  func(p *ConnParams) { p.RetryCount = 8 },
		"RNRRetry":    func(p *ConnParams) { p.RNRRetry = 8 },
		"MinRNRTimer": func(p *ConnParams) { p.MinRNRTimer = 32 },
		"DGID":        func(p *ConnParams) { p.DGID = GID{} },
	}
	for field, mutate := range bad {
		p := validParams()
		mutate(&p)
		err := p.Validate()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", field, err)
			continue
		}
		if !contains(err.Error(), field) {
			t.Errorf("%s: error %q does not name the field", field, err)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestMemory(t *testing.T) {
	if _, err := AllocMemory(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("AllocMemory(0) = %v", err)
	}
	before := LiveHandles()
	m, err := AllocMemory(100)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != 4096 && m.Len()%4096 != 0 {
		t.Errorf("Len %d not page-rounded", m.Len())
	}
	if m.Addr()%4096 != 0 {
		t.Errorf("Addr %#x not page aligned", m.Addr())
	}
	m.Bytes()[99] = 7
	if LiveHandles() != before+1 {
		t.Errorf("LiveHandles = %d, want %d", LiveHandles(), before+1)
	}
	m.regs.Add(1)
	if err := m.Close(); !errors.Is(err, ErrBusy) {
		t.Errorf("Close with registrations = %v, want ErrBusy", err)
	}
	m.regs.Add(-1)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if LiveHandles() != before {
		t.Errorf("LiveHandles after Close = %d, want %d", LiveHandles(), before)
	}
}

func TestClosedHandles(t *testing.T) {
	var qp QP
	if _, err := qp.Post([]SendWR{{Opcode: OpWrite}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Post on closed QP = %v", err)
	}
	if err := qp.SetAccess(AccessRemoteRead); !errors.Is(err, ErrClosed) {
		t.Errorf("SetAccess on closed QP = %v", err)
	}
	var cq CQ
	if _, err := cq.Poll(make([]WC, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Poll on closed CQ = %v", err)
	}
	var pd PD
	if _, err := pd.RegisterMemory(nil, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("RegisterMemory on closed PD = %v", err)
	}
}

func TestNextRKeyKeepsTheWindowIndex(t *testing.T) {
	for _, c := range []struct{ in, want uint32 }{
		{0x00012300, 0x00012301},
		{0x000123fe, 0x000123ff},
		{0x000123ff, 0x00012300}, // the key byte wraps; the index stays
		{0xffffffff, 0xffffff00},
	} {
		if got := NextRKey(c.in); got != c.want {
			t.Errorf("NextRKey(%#x) = %#x, want %#x", c.in, got, c.want)
		}
	}
	w := InvalidateWR(7, 0xabcd01, FlagSignaled)
	if w.Opcode != OpLocalInvalidate || w.RKey != 0xabcd01 || w.ID != 7 || w.Flags != FlagSignaled || w.Length != 0 {
		t.Errorf("InvalidateWR = %+v", w)
	}
	var mw MW
	if _, err := mw.BindWR(1, &MR{}, 0, 8, AccessRemoteWrite, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("BindWR on a closed window = %v, want ErrClosed", err)
	}
}
