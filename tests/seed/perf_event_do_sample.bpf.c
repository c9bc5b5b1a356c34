// Example 8: a perf_event program. It runs once per sample of the perf event it is attached to;
// how often is set by the event's attributes (sample_freq or sample_period), i.e. Options(freq=...)
// or %%bpf --freq N / --period N. ctx->regs are the registers of the interrupted code.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct sample_count {
	u64 samples;
	u64 user;		/* samples taken while the task ran user code */
	u64 last_period;	/* ctx->sample_period: events between two samples (ns for cpu-clock) */
	u64 last_ip;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);			/* tgid */
	__type(value, struct sample_count);
} samples SEC(".maps");

u64 total;

SEC("perf_event")
int do_sample(struct bpf_perf_event_data *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct sample_count zero = {}, *s;

	__sync_fetch_and_add(&total, 1);
	s = bpf_map_lookup_elem(&samples, &tgid);
	if (!s) {
		bpf_map_update_elem(&samples, &tgid, &zero, BPF_NOEXIST);
		s = bpf_map_lookup_elem(&samples, &tgid);
		if (!s)
			return 0;
	}
	__sync_fetch_and_add(&s->samples, 1);
	u64 ip = PT_REGS_IP(&ctx->regs);
	/* x86-64 and arm64 keep the kernel in the upper half of the address space */
	if (!(ip >> 63))
		__sync_fetch_and_add(&s->user, 1);
	s->last_period = ctx->sample_period;
	s->last_ip = ip;
	bpf_get_current_comm(&s->comm, sizeof(s->comm));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
