//go:build cgo && linux

/* Thin C helpers over libibverbs for package verbs. Go passes compact,
 * fixed-layout structs; C builds the verbs structures, so the Go side never
 * depends on libibverbs' struct layouts and each batch is one crossing. */
#ifndef MU_VERBS_SHIM_H
#define MU_VERBS_SHIM_H

#include <stdint.h>
#include <infiniband/verbs.h>

/* Mirrors verbs.PortAttr. */
typedef struct mu_port_attr {
	uint32_t state;
	uint32_t max_mtu;
	uint32_t active_mtu;
	uint32_t link_layer;
	uint32_t gid_tbl_len;
	uint32_t lid;
} mu_port_attr;

/* Mirrors verbs.DeviceAttr. */
typedef struct mu_device_attr {
	uint64_t node_guid;
	uint32_t max_qp_wr;
	uint32_t max_sge;
	uint32_t max_cqe;
	uint32_t max_qp_rd_atom;
	uint32_t max_qp_init_rd_atom;
	uint32_t atomic_cap;
	uint32_t phys_port_cnt;
	uint32_t max_mw;
	uint64_t device_cap_flags;
} mu_device_attr;

/* Mirrors verbs.WC: the fields of ibv_wc that a one-sided user needs. */
typedef struct mu_wc {
	uint64_t wr_id;
	uint32_t status;
	uint32_t opcode;
	uint32_t qp_num;
	uint32_t vendor_err;
	uint32_t byte_len;
	uint32_t pad;
} mu_wc;

/* Mirrors verbs.SendWR. opcode: MU_OP_*; flags: MU_FLAG_*. For
 * MU_OP_BIND_MW the fields carry the bind: compare_add the ibv_mw, swap the
 * ibv_mr, local_addr and remote_addr the window's address and length,
 * length its access flags, rkey the rkey it takes. For MU_OP_LOCAL_INV rkey
 * is the rkey to invalidate. */
typedef struct mu_send_wr {
	uint64_t wr_id;
	uint64_t local_addr;
	uint64_t remote_addr;
	uint64_t compare_add;
	uint64_t swap;
	uint32_t lkey;
	uint32_t rkey;
	uint32_t length;
	uint8_t opcode;
	uint8_t flags;
	uint8_t pad[2];
} mu_send_wr;

enum { MU_OP_WRITE = 1, MU_OP_READ = 2, MU_OP_CAS = 3, MU_OP_BIND_MW = 4, MU_OP_LOCAL_INV = 5 };
enum { MU_FLAG_SIGNALED = 1, MU_FLAG_NO_INLINE = 2, MU_FLAG_FENCE = 4 };

/* Mirrors verbs.ConnParams. */
typedef struct mu_conn_params {
	uint8_t dgid[16];
	uint32_t dest_qpn;
	uint32_t rq_psn;
	uint32_t sq_psn;
	uint32_t access;
	uint8_t port;
	uint8_t sgid_index;
	uint8_t hop_limit;
	uint8_t path_mtu;
	uint8_t timeout;
	uint8_t retry_cnt;
	uint8_t rnr_retry;
	uint8_t min_rnr_timer;
	uint8_t max_rd_atomic;
	uint8_t max_dest_rd_atomic;
	uint8_t pad[2];
} mu_conn_params;

typedef struct mu_cq {
	struct ibv_cq *cq;
	struct ibv_wc *scratch; /* poll target, converted into mu_wc */
	int scratch_len;
} mu_cq;

typedef struct mu_qp {
	struct ibv_qp *qp;
	struct ibv_send_wr *wrs; /* chain storage for one batch */
	struct ibv_sge *sges;
	int batch_cap;
	uint32_t max_inline;
} mu_qp;

/* Writes up to max device names (each in a name_len slot, NUL-terminated)
 * and GUIDs; returns the number of devices present or -errno. */
int mu_list_devices(char *names, int name_len, uint64_t *guids, int max);
struct ibv_context *mu_open(const char *name, int *err);
int mu_query_device(struct ibv_context *ctx, mu_device_attr *out);
int mu_query_port(struct ibv_context *ctx, uint8_t port, mu_port_attr *out);
int mu_query_gid(struct ibv_context *ctx, uint8_t port, int index, uint8_t *gid16);

struct ibv_pd *mu_alloc_pd(struct ibv_context *ctx, int *err);
struct ibv_mr *mu_reg_mr(struct ibv_pd *pd, uintptr_t addr, uint64_t len, int access, int *err);
uint32_t mu_mr_lkey(struct ibv_mr *mr);
uint32_t mu_mr_rkey(struct ibv_mr *mr);
/* A type 2 memory window: bound by a MU_OP_BIND_MW work request on one
 * queue pair, usable only through that queue pair. */
struct ibv_mw *mu_alloc_mw(struct ibv_pd *pd, int *err);
uint32_t mu_mw_rkey(struct ibv_mw *mw);

mu_cq *mu_cq_create(struct ibv_context *ctx, int cqe, int *err);
int mu_cq_destroy(mu_cq *cq);
/* Polls up to n completions into out; returns the count or -errno. */
int mu_cq_poll(mu_cq *cq, mu_wc *out, int n);
/* Like mu_cq_poll, but polls again while the CQ is empty, up to spins
 * times: a bounded busy-wait that costs one crossing instead of one per
 * attempt. */
int mu_cq_poll_spin(mu_cq *cq, mu_wc *out, int n, int spins);

mu_qp *mu_qp_create(struct ibv_pd *pd, mu_cq *cq, uint32_t max_send_wr,
		    uint32_t max_inline, int *err);
int mu_qp_destroy(mu_qp *qp);
uint32_t mu_qp_num(mu_qp *qp);
uint32_t mu_qp_max_inline(mu_qp *qp);
/* Posts n work requests as chains of at most batch_cap; *posted receives how
 * many were accepted. Returns 0 or an errno. An accepted bind sets its
 * window's rkey to the bound one, which the next bind or invalidation of
 * that window must name. */
int mu_post(mu_qp *qp, const mu_send_wr *in, int n, int *posted);
int mu_qp_to_init(mu_qp *qp, uint8_t port, uint32_t access);
int mu_qp_to_rtr(mu_qp *qp, const mu_conn_params *p);
int mu_qp_to_rts(mu_qp *qp, const mu_conn_params *p);
/* RESET -> INIT -> RTR -> RTS in one crossing; *step receives the state
 * whose transition failed. */
int mu_qp_cycle(mu_qp *qp, const mu_conn_params *p, int *step);
int mu_qp_set_state(mu_qp *qp, int state);
int mu_qp_set_access(mu_qp *qp, uint32_t access);
int mu_qp_query_state(mu_qp *qp, int *state);

#endif
