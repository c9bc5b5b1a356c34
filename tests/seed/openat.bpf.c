// Example 1: the openat enter/exit tracepoints.
// enter reads the int and string arguments out of ctx->args[], exit reads ctx->ret;
// the two halves meet in a hash map keyed by thread id and leave as one ring-buffer record.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define FILENAME_LEN 256

struct event {
	u32 pid;
	u32 tid;
	unsigned int dfd;	/* openat's first argument, (unsigned int)ctx->args[0] */
	unsigned int fd;	/* the return value as the seed reads it: (unsigned int)ctx->ret */
	int ret;		/* the same, signed: -errno when the open failed */
	char comm[16];
	char filename[FILENAME_LEN];
};
struct event *_event_btf __attribute__((unused));	/* keeps struct event in BTF for h.events() */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);			/* tid: enter and exit run on the same thread */
	__type(value, struct event);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

const volatile pid_t target_pid = 0;

SEC("tp/syscalls/sys_enter_openat")
int handle_openat_enter(struct trace_event_raw_sys_enter *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 pid = id >> 32, tid = (u32)id;
	struct event check = {};
	char *check_filename = check.filename;
	const int filename_len = sizeof(check.filename);

	if (target_pid && target_pid != pid)
		return 0;

	unsigned int fd = (unsigned int)ctx->args[0];
	/* As the seed reads a string: a fixed-size copy. It fails as a whole when the
	 * FILENAME_LEN bytes cross into an unmapped page; then read up to the NUL only. */
	if (bpf_probe_read_user(check_filename, filename_len, (char *)ctx->args[1]) < 0)
		bpf_probe_read_user_str(check_filename, filename_len, (char *)ctx->args[1]);
	check.pid = pid;
	check.tid = tid;
	check.dfd = fd;
	bpf_get_current_comm(&check.comm, sizeof(check.comm));
	bpf_map_update_elem(&start, &tid, &check, BPF_ANY);
	return 0;
}

SEC("tp/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct event *entered = bpf_map_lookup_elem(&start, &tid);

	if (!entered)
		return 0;
	unsigned int fd = (unsigned int)ctx->ret;
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		__builtin_memcpy(e, entered, sizeof(*e));
		e->fd = fd;
		e->ret = (int)ctx->ret;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
