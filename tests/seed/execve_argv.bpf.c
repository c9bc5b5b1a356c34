// Example 2: the execve argv reader. ctx->args[1] is execve's `const char *const *argv`:
// a user-space array of user-space string pointers, read one pointer and one string at a time.
// Completed after libbpf-tools' execsnoop, with a ring buffer instead of a perf buffer.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define FILENAME_LEN 128
#define MAX_ARGS 10		/* argv[0..9]; args_count says how many were there (capped) */
#define ARG_LEN 64		/* each argument is cut at 63 characters */

struct event {
	pid_t pid;
	pid_t ppid;
	uid_t uid;
	int args_count;
	unsigned int args_size;	/* bytes of argv read, NULs included */
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	char argv[MAX_ARGS][ARG_LEN];
};
struct event *_event_btf __attribute__((unused));	/* keeps struct event in BTF for h.events() */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

const volatile pid_t target_ppid = 0;	/* only children of this process (0: every execve) */

SEC("tracepoint/syscalls/sys_enter_execve")
int tracepoint__syscalls__sys_enter_execve(struct trace_event_raw_sys_enter* ctx)
{
	u64 id;
	pid_t pid, tgid;
	unsigned int ret;
	struct event *event;
	struct task_struct *task;
	const char **args = (const char **)(ctx->args[1]);
	const char *argp;

	task = (struct task_struct *)bpf_get_current_task();
	if (target_ppid && BPF_CORE_READ(task, real_parent, tgid) != target_ppid)
		return 0;

	id = bpf_get_current_pid_tgid();
	pid = (pid_t)id;
	tgid = id >> 32;
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event)
		return 0;

	event->pid = tgid;
	event->ppid = BPF_CORE_READ(task, real_parent, tgid);
	event->uid = (u32)bpf_get_current_uid_gid();
	event->args_count = 0;
	event->args_size = 0;
	bpf_get_current_comm(&event->comm, sizeof(event->comm));
	if (bpf_probe_read_user_str(event->filename, sizeof(event->filename), (const char *)ctx->args[0]) < 0)
		event->filename[0] = '\0';

	for (int i = 0; i < MAX_ARGS; i++) {
		argp = NULL;
		if (bpf_probe_read_user(&argp, sizeof(argp), &args[i]) < 0 || !argp)
			break;
		ret = bpf_probe_read_user_str(event->argv[i], ARG_LEN, argp);
		if ((int)ret < 0) {
			event->argv[i][0] = '\0';
			break;
		}
		event->args_count++;
		event->args_size += ret;
	}
	(void)pid;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
