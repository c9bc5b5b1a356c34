// Example 4: a kprobe taking struct pt_regs *ctx itself and reading the arguments with
// PT_REGS_PARMn (counted from 1). From the kernel's samples/bpf/tracex5, where
//   static int __seccomp_filter(int this_syscall, const struct seccomp_data *sd, const bool recheck_after_trace)
// ran for every syscall of a task under a seccomp filter. tracex5 splits the work over tail calls
// (bpf_tail_call into PROG(SYS__NR_write) etc.); the lab attaches every program of an object by its
// SEC, and tail-call targets have no attach point, so here one program does both steps.
//
// Kernels since 2025 ("seccomp: remove the 'sd' argument from __seccomp_filter()"; Linux 6.18 here) declare
//   static int __seccomp_filter(int this_syscall, const bool recheck_after_trace)
// and fill the seccomp_data on their own stack; before that, syscalls arriving through the generic entry
// code (x86-64 among others) already passed sd == NULL. Either way PT_REGS_PARM2 is 0 or 1, the seed's
// bpf_probe_read_kernel of it fails, and the program builds the same seccomp_data the way the kernel
// does (populate_seccomp_data): from the task's saved user registers.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#if defined(__TARGET_ARCH_x86)
#define __NR_write 1
#else
#define __NR_write 64	/* arm64, riscv: the generic syscall table */
#endif

struct write_event {
	u32 pid;
	int nr;
	int from_param;		/* 1: seccomp_data came from PT_REGS_PARM2, 0: from the task's registers */
	u64 args[3];		/* fd, buf, count */
};
struct write_event *_write_event_btf __attribute__((unused));	/* keeps the struct in BTF for h.events() */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);			/* tgid */
	__type(value, u64);			/* syscalls that went through the seccomp filter */
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} writes SEC(".maps");

SEC("kprobe/__seccomp_filter")
int bpf_prog1(struct pt_regs *ctx)
{
	int sc_nr = (int)PT_REGS_PARM1(ctx);
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1, *n;
	struct seccomp_data sd;
	int from_param = 1;

	n = bpf_map_lookup_elem(&calls, &pid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&calls, &pid, &one, BPF_NOEXIST);

	if (bpf_probe_read_kernel(&sd, sizeof(sd), (void *)PT_REGS_PARM2(ctx)) < 0) {
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

		__builtin_memset(&sd, 0, sizeof(sd));
		sd.nr = sc_nr;
		sd.instruction_pointer = PT_REGS_IP_CORE(regs);
		sd.args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
		sd.args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
		sd.args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
		sd.args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
		sd.args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);	/* libbpf 1.1 has no PARM6 macro */
		from_param = 0;
	}

	/* tracex5's PROG(SYS__NR_write): report writes of exactly 512 bytes */
	if (sd.nr == __NR_write && sd.args[2] == 512) {
		struct write_event *e = bpf_ringbuf_reserve(&writes, sizeof(*e), 0);
		if (!e)
			return 0;
		e->pid = pid;
		e->nr = sd.nr;
		e->from_param = from_param;
		e->args[0] = sd.args[0];
		e->args[1] = sd.args[1];
		e->args[2] = sd.args[2];
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
