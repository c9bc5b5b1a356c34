// Example 5: a kretprobe with BPF_KRETPROBE(name, ret), which names the probed function's return
// value (PT_REGS_RC(ctx), also readable directly since the macro keeps ctx). Completed after
// libbpf-tools' fsslower: an entry probe notes the file and start time by thread id, probe_exit
// makes the record.
//
// The seed's "kretprobe/dummy_file_write" is a placeholder: fsslower's loader retargets it with
// bpf_program__set_attach_target() to the write op of the chosen filesystem (ext4_file_write_iter,
// xfs_file_write_iter, ...). The lab attaches by the SEC as written, where dummy_file_write names no
// kernel function, so this program probes vfs_write, which every write(2) to a file passes through:
//   ssize_t vfs_write(struct file *file, const char __user *buf, size_t count, loff_t *pos)
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define FILE_NAME_LEN 64
#define TASK_COMM_LEN 16

enum fs_file_op { READ, WRITE, OPEN, FSYNC };

struct data {
	u64 ts;
	loff_t start;		/* file offset the write began at */
	struct file *fp;
};

struct event {
	u64 delta_us;
	u64 end_ns;
	s64 offset;
	s64 size;		/* the return value: bytes written or -errno */
	s64 rc;			/* the same, read with PT_REGS_RC(ctx) */
	u32 pid;
	enum fs_file_op op;
	char file[FILE_NAME_LEN];
	char task[TASK_COMM_LEN];
};
struct event *_event_btf __attribute__((unused));	/* keeps struct event in BTF for h.events() */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);			/* tid */
	__type(value, struct data);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events SEC(".maps");

const volatile pid_t target_pid = 0;

static int probe_entry(struct file *fp, loff_t *pos)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
	struct data data = {};

	if (target_pid && target_pid != pid)
		return 0;
	data.ts = bpf_ktime_get_ns();
	data.fp = fp;
	if (pos)
		bpf_probe_read_kernel(&data.start, sizeof(data.start), pos);
	bpf_map_update_elem(&starts, &tid, &data, BPF_ANY);
	return 0;
}

static int probe_exit(struct pt_regs *ctx, enum fs_file_op op, ssize_t size)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 pid = pid_tgid >> 32, tid = (u32)pid_tgid;
	u64 end_ns = bpf_ktime_get_ns();
	struct data *datap;
	struct event *event;
	struct file *fp;
	struct dentry *dentry;
	const unsigned char *file_name;

	datap = bpf_map_lookup_elem(&starts, &tid);
	if (!datap)
		return 0;
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (event) {
		event->delta_us = (end_ns - datap->ts) / 1000;
		event->end_ns = end_ns;
		event->offset = datap->start;
		event->size = size;
		event->rc = PT_REGS_RC(ctx);
		event->pid = pid;
		event->op = op;
		fp = datap->fp;	/* a plain read: BPF_CORE_READ(datap->fp, ...) would relocate our own struct data */
		dentry = BPF_CORE_READ(fp, f_path.dentry);
		file_name = BPF_CORE_READ(dentry, d_name.name);
		bpf_probe_read_kernel_str(&event->file, sizeof(event->file), file_name);
		bpf_get_current_comm(&event->task, sizeof(event->task));
		bpf_ringbuf_submit(event, 0);
	}
	bpf_map_delete_elem(&starts, &tid);
	return 0;
}

SEC("kprobe/vfs_write")
int BPF_KPROBE(file_write_entry, struct file *file, const char *buf, size_t count, loff_t *pos)
{
	return probe_entry(file, pos);
}

SEC("kretprobe/vfs_write")
int BPF_KRETPROBE(file_write_exit, ssize_t ret)
{
	return probe_exit(ctx, WRITE, ret);
}

char LICENSE[] SEC("license") = "GPL";
