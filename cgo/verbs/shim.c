//go:build cgo && linux

#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int err_or(int fallback)
{
	return errno != 0 ? errno : fallback;
}

int mu_list_devices(char *names, int name_len, uint64_t *guids, int max)
{
	int n = 0;
	errno = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	if (list == NULL)
		return -err_or(ENODEV);
	for (int i = 0; i < n && i < max; i++) {
		const char *name = ibv_get_device_name(list[i]);
		char *dst = names + (size_t)i * (size_t)name_len;
		strncpy(dst, name ? name : "", (size_t)name_len - 1);
		dst[name_len - 1] = 0;
		guids[i] = be64toh(ibv_get_device_guid(list[i]));
	}
	ibv_free_device_list(list);
	return n;
}

struct ibv_context *mu_open(const char *name, int *err)
{
	int n = 0;
	*err = 0;
	errno = 0;
	struct ibv_device **list = ibv_get_device_list(&n);
	if (list == NULL) {
		/* No uverbs at all (ENOSYS without the kernel module): no device. */
		*err = ENODEV;
		return NULL;
	}
	struct ibv_context *ctx = NULL;
	int found = 0;
	for (int i = 0; i < n; i++) {
		if (name[0] != 0 && strcmp(ibv_get_device_name(list[i]), name) != 0)
			continue;
		found = 1;
		errno = 0;
		ctx = ibv_open_device(list[i]);
		if (ctx == NULL)
			*err = err_or(EIO);
		break;
	}
	if (!found)
		*err = ENODEV;
	ibv_free_device_list(list);
	return ctx;
}

int mu_query_device(struct ibv_context *ctx, mu_device_attr *out)
{
	struct ibv_device_attr a;
	memset(&a, 0, sizeof a);
	int rc = ibv_query_device(ctx, &a);
	if (rc != 0)
		return rc;
	out->node_guid = be64toh(a.node_guid);
	out->max_qp_wr = (uint32_t)a.max_qp_wr;
	out->max_sge = (uint32_t)a.max_sge;
	out->max_cqe = (uint32_t)a.max_cqe;
	out->max_qp_rd_atom = (uint32_t)a.max_qp_rd_atom;
	out->max_qp_init_rd_atom = (uint32_t)a.max_qp_init_rd_atom;
	out->atomic_cap = (uint32_t)a.atomic_cap;
	out->phys_port_cnt = a.phys_port_cnt;
	out->max_mw = a.max_mw > 0 ? (uint32_t)a.max_mw : 0;
	out->device_cap_flags = (uint64_t)a.device_cap_flags;
	return 0;
}

int mu_query_port(struct ibv_context *ctx, uint8_t port, mu_port_attr *out)
{
	struct ibv_port_attr a;
	memset(&a, 0, sizeof a);
	int rc = ibv_query_port(ctx, port, &a);
	if (rc != 0)
		return rc;
	out->state = a.state;
	out->max_mtu = a.max_mtu;
	out->active_mtu = a.active_mtu;
	out->link_layer = a.link_layer;
	out->gid_tbl_len = (uint32_t)a.gid_tbl_len;
	out->lid = a.lid;
	return 0;
}

int mu_query_gid(struct ibv_context *ctx, uint8_t port, int index, uint8_t *gid16)
{
	union ibv_gid g;
	int rc = ibv_query_gid(ctx, port, index, &g);
	if (rc != 0)
		return rc;
	memcpy(gid16, g.raw, 16);
	return 0;
}

struct ibv_pd *mu_alloc_pd(struct ibv_context *ctx, int *err)
{
	errno = 0;
	struct ibv_pd *pd = ibv_alloc_pd(ctx);
	*err = pd == NULL ? err_or(ENOMEM) : 0;
	return pd;
}

struct ibv_mr *mu_reg_mr(struct ibv_pd *pd, uintptr_t addr, uint64_t len, int access, int *err)
{
	errno = 0;
	struct ibv_mr *mr = ibv_reg_mr(pd, (void *)addr, (size_t)len, access);
	*err = mr == NULL ? err_or(EINVAL) : 0;
	return mr;
}

uint32_t mu_mr_lkey(struct ibv_mr *mr) { return mr->lkey; }
uint32_t mu_mr_rkey(struct ibv_mr *mr) { return mr->rkey; }

struct ibv_mw *mu_alloc_mw(struct ibv_pd *pd, int *err)
{
	errno = 0;
	struct ibv_mw *mw = ibv_alloc_mw(pd, IBV_MW_TYPE_2);
	*err = mw == NULL ? err_or(EOPNOTSUPP) : 0;
	return mw;
}

uint32_t mu_mw_rkey(struct ibv_mw *mw) { return mw->rkey; }

mu_cq *mu_cq_create(struct ibv_context *ctx, int cqe, int *err)
{
	mu_cq *c = calloc(1, sizeof *c);
	if (c == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	c->scratch_len = 64;
	c->scratch = calloc((size_t)c->scratch_len, sizeof *c->scratch);
	if (c->scratch == NULL) {
		free(c);
		*err = ENOMEM;
		return NULL;
	}
	errno = 0;
	c->cq = ibv_create_cq(ctx, cqe, NULL, NULL, 0);
	if (c->cq == NULL) {
		*err = err_or(EINVAL);
		free(c->scratch);
		free(c);
		return NULL;
	}
	*err = 0;
	return c;
}

int mu_cq_destroy(mu_cq *c)
{
	int rc = ibv_destroy_cq(c->cq);
	if (rc != 0)
		return rc; /* still referenced by a QP: keep c valid */
	free(c->scratch);
	free(c);
	return 0;
}

int mu_cq_poll(mu_cq *c, mu_wc *out, int n)
{
	int total = 0;
	while (total < n) {
		int want = n - total;
		if (want > c->scratch_len)
			want = c->scratch_len;
		int got = ibv_poll_cq(c->cq, want, c->scratch);
		if (got < 0)
			return total > 0 ? total : -EIO;
		for (int i = 0; i < got; i++) {
			const struct ibv_wc *w = &c->scratch[i];
			mu_wc *o = &out[total + i];
			o->wr_id = w->wr_id;
			o->status = w->status;
			/* opcode and byte_len are only defined on success */
			o->opcode = w->status == IBV_WC_SUCCESS ? w->opcode : 0;
			o->byte_len = w->status == IBV_WC_SUCCESS ? w->byte_len : 0;
			o->qp_num = w->qp_num;
			o->vendor_err = w->vendor_err;
			o->pad = 0;
		}
		total += got;
		if (got < want)
			break;
	}
	return total;
}

int mu_cq_poll_spin(mu_cq *c, mu_wc *out, int n, int spins)
{
	int got;
	do {
		got = mu_cq_poll(c, out, n);
	} while (got == 0 && spins-- > 0);
	return got;
}

mu_qp *mu_qp_create(struct ibv_pd *pd, mu_cq *cq, uint32_t max_send_wr,
		    uint32_t max_inline, int *err)
{
	mu_qp *q = calloc(1, sizeof *q);
	if (q == NULL) {
		*err = ENOMEM;
		return NULL;
	}
	q->batch_cap = (int)max_send_wr;
	q->wrs = calloc((size_t)q->batch_cap, sizeof *q->wrs);
	q->sges = calloc((size_t)q->batch_cap, sizeof *q->sges);
	if (q->wrs == NULL || q->sges == NULL) {
		*err = ENOMEM;
		goto fail;
	}
	/* Providers cap inline data differently; halve until accepted. */
	for (;;) {
		struct ibv_qp_init_attr a;
		memset(&a, 0, sizeof a);
		a.send_cq = cq->cq;
		a.recv_cq = cq->cq;
		a.qp_type = IBV_QPT_RC;
		a.sq_sig_all = 0;
		a.cap.max_send_wr = max_send_wr;
		a.cap.max_recv_wr = 1;
		a.cap.max_send_sge = 1;
		a.cap.max_recv_sge = 1;
		a.cap.max_inline_data = max_inline;
		errno = 0;
		q->qp = ibv_create_qp(pd, &a);
		if (q->qp != NULL) {
			/* Providers may round 0 up; asking for none means none. */
			q->max_inline = max_inline == 0 ? 0 : a.cap.max_inline_data;
			break;
		}
		*err = err_or(EINVAL);
		if (max_inline == 0 || *err != EINVAL)
			goto fail;
		max_inline /= 2;
	}
	*err = 0;
	return q;
fail:
	free(q->wrs);
	free(q->sges);
	free(q);
	return NULL;
}

int mu_qp_destroy(mu_qp *q)
{
	int rc = ibv_destroy_qp(q->qp);
	if (rc != 0)
		return rc;
	free(q->wrs);
	free(q->sges);
	free(q);
	return 0;
}

uint32_t mu_qp_num(mu_qp *q) { return q->qp->qp_num; }
uint32_t mu_qp_max_inline(mu_qp *q) { return q->max_inline; }

static void build_wr(mu_qp *q, const mu_send_wr *in, struct ibv_send_wr *wr,
		     struct ibv_sge *sge)
{
	memset(wr, 0, sizeof *wr);
	wr->wr_id = in->wr_id;
	sge->addr = in->local_addr;
	sge->length = in->length;
	sge->lkey = in->lkey;
	wr->sg_list = sge;
	wr->num_sge = in->length > 0 ? 1 : 0;
	if (in->flags & MU_FLAG_SIGNALED)
		wr->send_flags |= IBV_SEND_SIGNALED;
	if (in->flags & MU_FLAG_FENCE)
		wr->send_flags |= IBV_SEND_FENCE;
	switch (in->opcode) {
	case MU_OP_WRITE:
		wr->opcode = IBV_WR_RDMA_WRITE;
		wr->wr.rdma.remote_addr = in->remote_addr;
		wr->wr.rdma.rkey = in->rkey;
		/* Inline copies the payload at post time: no lkey check, and
		 * the caller may reuse the buffer at once. */
		if (in->length > 0 && in->length <= q->max_inline &&
		    !(in->flags & MU_FLAG_NO_INLINE))
			wr->send_flags |= IBV_SEND_INLINE;
		break;
	case MU_OP_READ:
		wr->opcode = IBV_WR_RDMA_READ;
		wr->wr.rdma.remote_addr = in->remote_addr;
		wr->wr.rdma.rkey = in->rkey;
		break;
	case MU_OP_CAS:
		wr->opcode = IBV_WR_ATOMIC_CMP_AND_SWP;
		wr->wr.atomic.remote_addr = in->remote_addr;
		wr->wr.atomic.rkey = in->rkey;
		wr->wr.atomic.compare_add = in->compare_add;
		wr->wr.atomic.swap = in->swap;
		break;
	case MU_OP_BIND_MW:
		wr->opcode = IBV_WR_BIND_MW;
		wr->sg_list = NULL;
		wr->num_sge = 0;
		wr->bind_mw.mw = (struct ibv_mw *)(uintptr_t)in->compare_add;
		wr->bind_mw.rkey = in->rkey;
		wr->bind_mw.bind_info.mr = (struct ibv_mr *)(uintptr_t)in->swap;
		wr->bind_mw.bind_info.addr = in->local_addr;
		wr->bind_mw.bind_info.length = in->remote_addr;
		wr->bind_mw.bind_info.mw_access_flags = in->length;
		break;
	case MU_OP_LOCAL_INV:
		wr->opcode = IBV_WR_LOCAL_INV;
		wr->sg_list = NULL;
		wr->num_sge = 0;
		wr->invalidate_rkey = in->rkey;
		break;
	}
}

int mu_post(mu_qp *q, const mu_send_wr *in, int n, int *posted)
{
	*posted = 0;
	while (*posted < n) {
		int chunk = n - *posted;
		if (chunk > q->batch_cap)
			chunk = q->batch_cap;
		const mu_send_wr *src = in + *posted;
		for (int i = 0; i < chunk; i++) {
			if (src[i].opcode < MU_OP_WRITE || src[i].opcode > MU_OP_LOCAL_INV)
				return EINVAL;
			if (src[i].opcode == MU_OP_BIND_MW && (src[i].compare_add == 0 || src[i].swap == 0))
				return EINVAL;
			build_wr(q, &src[i], &q->wrs[i], &q->sges[i]);
			q->wrs[i].next = i + 1 < chunk ? &q->wrs[i + 1] : NULL;
		}
		struct ibv_send_wr *bad = NULL;
		int rc = ibv_post_send(q->qp, q->wrs, &bad);
		int accepted = chunk;
		if (rc != 0)
			accepted = bad != NULL ? (int)(bad - q->wrs) : 0;
		/* libibverbs leaves a type 2 window's rkey to the caller: the
		 * provider names the window by it in the next bind. */
		for (int i = 0; i < accepted; i++)
			if (q->wrs[i].opcode == IBV_WR_BIND_MW)
				q->wrs[i].bind_mw.mw->rkey = q->wrs[i].bind_mw.rkey;
		*posted += accepted;
		if (rc != 0)
			return rc;
	}
	return 0;
}

int mu_qp_to_init(mu_qp *q, uint8_t port, uint32_t access)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_INIT;
	a.pkey_index = 0;
	a.port_num = port;
	a.qp_access_flags = (unsigned int)access;
	return ibv_modify_qp(q->qp, &a,
			     IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				     IBV_QP_ACCESS_FLAGS);
}

int mu_qp_to_rtr(mu_qp *q, const mu_conn_params *p)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = (enum ibv_mtu)p->path_mtu;
	a.dest_qp_num = p->dest_qpn;
	a.rq_psn = p->rq_psn;
	a.max_dest_rd_atomic = p->max_dest_rd_atomic;
	a.min_rnr_timer = p->min_rnr_timer;
	a.ah_attr.is_global = 1;
	memcpy(a.ah_attr.grh.dgid.raw, p->dgid, 16);
	a.ah_attr.grh.sgid_index = p->sgid_index;
	a.ah_attr.grh.hop_limit = p->hop_limit;
	a.ah_attr.port_num = p->port;
	return ibv_modify_qp(q->qp, &a,
			     IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				     IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				     IBV_QP_MAX_DEST_RD_ATOMIC |
				     IBV_QP_MIN_RNR_TIMER);
}

int mu_qp_to_rts(mu_qp *q, const mu_conn_params *p)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = IBV_QPS_RTS;
	a.timeout = p->timeout;
	a.retry_cnt = p->retry_cnt;
	a.rnr_retry = p->rnr_retry;
	a.sq_psn = p->sq_psn;
	a.max_rd_atomic = p->max_rd_atomic;
	return ibv_modify_qp(q->qp, &a,
			     IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
				     IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
				     IBV_QP_MAX_QP_RD_ATOMIC);
}

int mu_qp_set_state(mu_qp *q, int state)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_state = (enum ibv_qp_state)state;
	return ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
}

int mu_qp_cycle(mu_qp *q, const mu_conn_params *p, int *step)
{
	int rc;
	*step = IBV_QPS_RESET;
	if ((rc = mu_qp_set_state(q, IBV_QPS_RESET)) != 0)
		return rc;
	*step = IBV_QPS_INIT;
	if ((rc = mu_qp_to_init(q, p->port, p->access)) != 0)
		return rc;
	*step = IBV_QPS_RTR;
	if ((rc = mu_qp_to_rtr(q, p)) != 0)
		return rc;
	*step = IBV_QPS_RTS;
	return mu_qp_to_rts(q, p);
}

int mu_qp_set_access(mu_qp *q, uint32_t access)
{
	struct ibv_qp_attr a;
	memset(&a, 0, sizeof a);
	a.qp_access_flags = (unsigned int)access;
	return ibv_modify_qp(q->qp, &a, IBV_QP_ACCESS_FLAGS);
}

int mu_qp_query_state(mu_qp *q, int *state)
{
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	memset(&a, 0, sizeof a);
	int rc = ibv_query_qp(q->qp, &a, IBV_QP_STATE, &ia);
	if (rc != 0)
		return rc;
	*state = (int)a.qp_state;
	return 0;
}
