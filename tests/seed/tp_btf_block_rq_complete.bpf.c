// Example 7: tp_btf/block_rq_complete in the seed's two forms.
// TRACE_EVENT(block_rq_complete, TP_PROTO(struct request *rq, blk_status_t error, unsigned int nr_bytes), ...);
// vmlinux.h has the matching typedef
//   typedef void (*btf_trace_block_rq_complete)(void *, struct request *, blk_status_t, unsigned int);
// and the u64 array ctx holds the arguments after that leading void *: ctx[0] is rq, ctx[1] error,
// ctx[2] nr_bytes. (The seed's remark that ctx[0] is a struct pt_regs * holds for tracepoints whose
// first argument is one, e.g. sys_enter, not for this one.) A BTF tracepoint reads kernel memory
// directly (rq->__sector), with no bpf_probe_read_kernel / BPF_CORE_READ.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

/* What the BPF_PROG form saw */
u64 completions, bytes, errors;
u64 last_sector;		/* of the last request that moved data (flushes have none) */
/* What the u64 *ctx form saw */
u64 raw_completions, raw_bytes;
u64 raw_last_sector;

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, int error,
	     unsigned int nr_bytes)
{
	__sync_fetch_and_add(&completions, 1);
	__sync_fetch_and_add(&bytes, nr_bytes);
	if (error)
		__sync_fetch_and_add(&errors, 1);
	if (nr_bytes)
		last_sector = rq->__sector;
	return 0;
}

SEC("tp_btf/block_rq_complete")
int btf_raw_tracepoint__block_rq_complete(u64 *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	unsigned int nr_bytes = (unsigned int)ctx[2];

	__sync_fetch_and_add(&raw_completions, 1);
	__sync_fetch_and_add(&raw_bytes, nr_bytes);
	if (nr_bytes)
		raw_last_sector = rq->__sector;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
