// Example 7, live twins: the two tp_btf forms of block_rq_complete on tp_btf/sched_switch, which fires
// on every machine all the time (block requests need a disk and a write reaching it).
//   typedef void (*btf_trace_sched_switch)(void *, bool preempt, struct task_struct *prev,
//                                          struct task_struct *next, unsigned int prev_state);
// so in the u64 *ctx form ctx[0] is preempt, ctx[1] prev and ctx[2] next; BPF_PROG names them.
// Both forms dereference the task pointers directly (prev->pid): the verifier knows their BTF types.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

const volatile pid_t target_pid = 0;	/* count the switches away from this process's threads */

/* BPF_PROG form */
u64 switches, switches_from_target;
u32 max_pid, last_prev_pid, last_next_pid;
/* u64 *ctx form */
u64 raw_switches, raw_switches_from_target;
u32 raw_max_pid, raw_last_prev_pid, raw_last_next_pid;

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u32 prev_pid = prev->pid, next_pid = next->pid;

	__sync_fetch_and_add(&switches, 1);
	if (target_pid && prev->tgid == target_pid)
		__sync_fetch_and_add(&switches_from_target, 1);
	if (prev_pid > max_pid)
		max_pid = prev_pid;
	if (next_pid > max_pid)
		max_pid = next_pid;
	last_prev_pid = prev_pid;
	last_next_pid = next_pid;
	return 0;
}

SEC("tp_btf/sched_switch")
int btf_raw_tracepoint__sched_switch(u64 *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	u32 prev_pid = prev->pid, next_pid = next->pid;

	__sync_fetch_and_add(&raw_switches, 1);
	if (target_pid && prev->tgid == target_pid)
		__sync_fetch_and_add(&raw_switches_from_target, 1);
	if (prev_pid > raw_max_pid)
		raw_max_pid = prev_pid;
	if (next_pid > raw_max_pid)
		raw_max_pid = next_pid;
	raw_last_prev_pid = prev_pid;
	raw_last_next_pid = next_pid;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
