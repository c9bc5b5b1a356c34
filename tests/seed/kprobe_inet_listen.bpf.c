// Example 3: a kprobe written with BPF_KPROBE, which unpacks struct pt_regs *ctx into the probed
// function's arguments: int inet_listen(struct socket *sock, int backlog) (net/ipv4/af_inet.c).
// Completed after libbpf-tools' solisten: fill_event reads the socket with BPF_CORE_READ (kprobes
// reach kernel memory only through probe reads) and the event waits in `values`, keyed by thread id.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#define AF_INET 2	/* from <sys/socket.h>: macros are not in vmlinux.h */
#define AF_INET6 10
#define TASK_COMM_LEN 16

struct event {
	__u32 addr[4];		/* bound address, network byte order (IPv4 in addr[0]) */
	__u32 pid;
	__u32 proto;		/* family << 16 | socket type */
	int backlog;
	int ret;		/* unused at entry: a kretprobe would fill it */
	__u16 port;		/* host byte order */
	char task[TASK_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);			/* tid */
	__type(value, struct event);
} values SEC(".maps");

const volatile pid_t target_pid = 0;

static void fill_event(struct event *event, struct socket *sock)
{
	__u16 family, type;
	struct sock *sk;
	struct inet_sock *inet;

	sk = BPF_CORE_READ(sock, sk);
	inet = (struct inet_sock *)sk;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	type = BPF_CORE_READ(sock, type);

	event->proto = ((__u32)family << 16) | type;
	event->port = bpf_ntohs(BPF_CORE_READ(inet, inet_sport));
	if (family == AF_INET)
		event->addr[0] = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
	else if (family == AF_INET6)
		/* &event->addr: the macro copies sizeof(*dst), all 16 bytes only through the array pointer */
		BPF_CORE_READ_INTO(&event->addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);
	bpf_get_current_comm(event->task, sizeof(event->task));
}

SEC("kprobe/inet_listen")
int BPF_KPROBE(inet_listen_entry, struct socket *sock, int backlog)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32;
	__u32 tid = (__u32)pid_tgid;
	struct event event = {};

	if (target_pid && target_pid != pid)
		return 0;

	fill_event(&event, sock);
	event.pid = pid;
	event.backlog = backlog;
	bpf_map_update_elem(&values, &tid, &event, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
