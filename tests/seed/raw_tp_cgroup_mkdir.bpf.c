// Example 6: raw_tracepoint/cgroup_mkdir. A raw tracepoint gets the tracepoint's TP_PROTO arguments
// unexpanded in ctx->args[]: TP_PROTO(struct cgroup *cgrp, const char *path) (include/trace/events/cgroup.h),
// so args[0] is the new cgroup and args[1] its path inside the hierarchy, both kernel pointers:
// read them with BPF_CORE_READ / bpf_probe_read_kernel_str. Completed after tracee's handler.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define PATH_LEN 256

typedef struct event_data {
	u64 ts;
	u32 pid;
	u32 tid;
	char comm[16];
	u64 cgroup_id;		/* the cgroup's kernfs node id: the inode number of its directory */
	int hierarchy_id;	/* 0 for the cgroup2 (unified) hierarchy */
	int level;		/* depth below the hierarchy's root */
	char path[PATH_LEN];
} event_data_t;
struct event_data *_event_data_btf __attribute__((unused));	/* keeps the struct in BTF for h.events() */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

const volatile pid_t target_pid = 0;

/* The common header of every record; 0 when the event is not one to report. */
static __always_inline int init_event_data(event_data_t *data, struct bpf_raw_tracepoint_args *ctx)
{
	u64 id = bpf_get_current_pid_tgid();

	data->pid = id >> 32;
	data->tid = (u32)id;
	if (target_pid && target_pid != data->pid)
		return 0;
	data->ts = bpf_ktime_get_ns();
	bpf_get_current_comm(&data->comm, sizeof(data->comm));
	return 1;
}

SEC("raw_tracepoint/cgroup_mkdir")
int tracepoint__cgroup__cgroup_mkdir(struct bpf_raw_tracepoint_args *ctx)
{
	event_data_t data = {};
	if (!init_event_data(&data, ctx))
		return 0;

	struct cgroup *dst_cgrp = (struct cgroup *) ctx->args[0];
	char *path = (char *) ctx->args[1];

	data.cgroup_id = BPF_CORE_READ(dst_cgrp, kn, id);
	data.hierarchy_id = BPF_CORE_READ(dst_cgrp, root, hierarchy_id);
	data.level = BPF_CORE_READ(dst_cgrp, level);
	bpf_probe_read_kernel_str(&data.path, sizeof(data.path), path);
	bpf_ringbuf_output(&events, &data, sizeof(data), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
