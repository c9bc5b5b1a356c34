// Example 9: fmod_ret. The program runs before the function body and receives the arguments plus
// `ret`, the return value so far. The trampoline stops at the first non-zero result (x86-64:
// invoke_bpf_mod_ret() in arch/x86/net/bpf_jit_comp.c), so `ret` is always 0 here and needs no check;
// a non-zero return skips the function and becomes its return value. Only functions marked ALLOW_ERROR_INJECTION and
// the security_* LSM hooks accept it; the seed's func_to_be_attached stands for such a function, so
// this program uses a real one:
//   int security_file_open(struct file *file)
// It refuses one file (the test's own, by inode number) to one process with -EPERM; every other
// open goes on to the function.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define EPERM 1		/* errno values are macros, not in vmlinux.h */

const volatile u64 target_ino = 0;	/* the file to refuse */
const volatile pid_t target_pid = 0;	/* to whom (0: everyone) */

u64 denied, allowed;

SEC("fmod_ret/security_file_open")
int BPF_PROG(func_name, struct file *file, int ret)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (target_pid && pid != target_pid)
		return 0;
	if (target_ino && file->f_inode->i_ino == target_ino) {
		__sync_fetch_and_add(&denied, 1);
		/* This will skip the original function logic. */
		return -EPERM;
	}
	__sync_fetch_and_add(&allowed, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
