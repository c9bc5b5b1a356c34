"""The programs the bench compares: BPF sources for both engines and the C producer and consumer.

One BPF object per buffer kind serves the lab and the C consumer alike: the
bench compiles the CO-RE source with the lab's toolchain and hands the very
same object file to ``consumer.c``.
"""
from __future__ import annotations

CALLS = 2_000_000          # getpid() calls of the producer per event run
RING_BYTES = 256 * 1024    # libbpf-bootstrap's ring buffer size
PERF_PAGES = 64            # perf buffer pages per CPU
HASH_ENTRIES = 1 << 20

# Counters per CPU cost no atomics on the path being measured: 0 tried, 1 failed in the program.
_CORE_COMMON = r"""#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
struct event { u32 pid; u32 cpu; u64 n; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, u32); __type(value, u32); } target SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2);
         __type(key, u32); __type(value, u64); } stats SEC(".maps");
%(buffer)s
SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    u32 zero = 0, one = 1;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 *want = bpf_map_lookup_elem(&target, &zero);
    if (!want || *want != pid)
        return 0;
    u64 *tried = bpf_map_lookup_elem(&stats, &zero), *failed = bpf_map_lookup_elem(&stats, &one);
    if (!tried || !failed)
        return 0;
    ++*tried;
%(output)s
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""
CORE_STREAM = {
    "ringbuf": _CORE_COMMON % {
        "buffer": f"struct {{ __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, {RING_BYTES}); }} events SEC(\".maps\");",
        "output": """    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        ++*failed;
        return 0;
    }
    e->pid = pid;
    e->cpu = bpf_get_smp_processor_id();
    e->n = *tried;
    bpf_ringbuf_submit(e, 0);"""},
    "perf": _CORE_COMMON % {
        "buffer": "struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, sizeof(u32));\n"
                  "         __uint(value_size, sizeof(u32)); } events SEC(\".maps\");",
        "output": """    struct event e = { .pid = pid, .cpu = bpf_get_smp_processor_id(), .n = *tried };
    if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e)))
        ++*failed;"""},
}

# The same program in BCC C, for the lab's BCC engine and for plain bcc.BPF alike.
_BCC_COMMON = r"""
struct event { u32 pid; u32 cpu; u64 n; };
%(buffer)s
BPF_ARRAY(target, u32, 1);
BPF_PERCPU_ARRAY(stats, u64, 2);
int on_getpid(void *ctx)
{
    u32 zero = 0, one = 1;
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u32 *want = target.lookup(&zero);
    if (!want || *want != pid)
        return 0;
    u64 *tried = stats.lookup(&zero), *failed = stats.lookup(&one);
    if (!tried || !failed)
        return 0;
    ++*tried;
%(output)s
    return 0;
}
"""
BCC_STREAM = {
    "ringbuf": _BCC_COMMON % {
        "buffer": f"BPF_RINGBUF_OUTPUT(events, {RING_BYTES // 4096});",
        "output": """    struct event *e = events.ringbuf_reserve(sizeof(struct event));
    if (!e) {
        ++*failed;
        return 0;
    }
    e->pid = pid;
    e->cpu = bpf_get_smp_processor_id();
    e->n = *tried;
    events.ringbuf_submit(e, 0);"""},
    "perf": _BCC_COMMON % {
        "buffer": "BPF_PERF_OUTPUT(events);",
        "output": """    struct event e = {};
    e.pid = pid;
    e.cpu = bpf_get_smp_processor_id();
    e.n = *tried;
    if (events.perf_submit(ctx, &e, sizeof(e)))
        ++*failed;"""},
}
TRACEPOINT = "syscalls:sys_enter_getpid"
BCC_SEC = "tracepoint/syscalls/sys_enter_getpid"

# A new CO-RE cell that reads a kernel struct; %(nonce)s makes each run a cache miss.
CORE_CELL = r"""#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10240);
         __type(key, u32); __type(value, u64); } counts SEC(".maps");
SEC("tp/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    u32 tgid = BPF_CORE_READ(t, tgid);
    u64 one = 1, *v = bpf_map_lookup_elem(&counts, &tgid);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(&counts, &tgid, &one, BPF_ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
/* %(nonce)s */
"""
# The same program for BCC, which rewrites t->tgid into a probe read.
BCC_CELL = r"""
#include <linux/sched.h>
BPF_HASH(counts, u32, u64, 10240);
int on_getpid(void *ctx)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    u32 tgid = t->tgid;
    counts.increment(tgid);
    return 0;
}
/* %(nonce)s */
"""

HASH_CELL = r"""
BPF_HASH(h, u32, u64, HASH_ENTRIES);
int touch_h(void *ctx)
{
    u32 k = 0;
    h.lookup(&k);
    return 0;
}
""".replace("HASH_ENTRIES", str(HASH_ENTRIES))

# Waits for one byte on stdin, so it starts only once its consumer is polling.
PRODUCER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long calls = atol(argv[1]);
    struct timespec a, b;
    char go;
    if (read(0, &go, 1) != 1)
        return 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < calls; i++)
        syscall(SYS_getpid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld %.6f\n", calls, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
"""

# libbpf's own consumer loop with a counting callback, the reference the lab is compared with.
CONSUMER_C = r"""
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static volatile sig_atomic_t stop;
static unsigned long long delivered, kernel_lost;

static void on_signal(int sig) { (void)sig; stop = 1; }
static int on_ring(void *ctx, void *data, size_t len) { delivered++; return 0; }
static void on_perf(void *ctx, int cpu, void *data, __u32 len) { delivered++; }
static void on_lost(void *ctx, int cpu, __u64 n) { kernel_lost += n; }

static unsigned long long stat(struct bpf_object *obj, __u32 key)
{
    int n = libbpf_num_possible_cpus();
    unsigned long long v[n > 0 ? n : 1], sum = 0;
    int fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "stats"));
    if (bpf_map_lookup_elem(fd, &key, v))
        return 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    return sum;
}

int main(int argc, char **argv)
{
    /* argv: object file, target pid, perf pages per CPU */
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
    if (!obj || bpf_object__load(obj))
        return 2;
    struct bpf_link *link = bpf_program__attach(bpf_object__find_program_by_name(obj, "on_getpid"));
    if (!link)
        return 3;
    __u32 zero = 0, pid = atoi(argv[2]);
    bpf_map_update_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "target")), &zero, &pid, BPF_ANY);
    struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");
    struct ring_buffer *rb = NULL;
    struct perf_buffer *pb = NULL;
    if (bpf_map__type(events) == BPF_MAP_TYPE_RINGBUF)
        rb = ring_buffer__new(bpf_map__fd(events), on_ring, NULL, NULL);
    else
        pb = perf_buffer__new(bpf_map__fd(events), atoi(argv[3]), on_perf, on_lost, NULL, NULL);
    if (!rb && !pb)
        return 4;
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        int err = rb ? ring_buffer__poll(rb, 100) : perf_buffer__poll(pb, 100);
        if (err < 0 && err != -EINTR)
            return 5;
    }
    if (rb)
        ring_buffer__consume(rb);
    else
        perf_buffer__consume(pb);
    printf("{\"delivered\": %llu, \"kernel_lost\": %llu, \"tried\": %llu, \"failed_in_program\": %llu}\n",
           delivered, kernel_lost, stat(obj, 0), stat(obj, 1));
    ring_buffer__free(rb);
    perf_buffer__free(pb);
    bpf_link__destroy(link);
    bpf_object__close(obj);
    return 0;
}
"""
