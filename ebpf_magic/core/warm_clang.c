/*
 * A warm clang: preloaded into one clang process that stays up, so each CO-RE
 * cell's compile skips loading clang's libraries (libLLVM and libclang-cpp:
 * ~200 MB, half a million relocations and their static constructors, about
 * 40 ms of CPU before clang reads its first argument).
 *
 * It takes the place of glibc's __libc_start_main, which runs after the
 * libraries are loaded and initialised but before clang's main(). With
 * EBPF_LAB_CLANG_SERVER=<fd> set, it serves requests on that socket instead:
 * each request (a SOCK_SEQPACKET message "cwd\0arg0\0arg1\0...", with stdin,
 * stdout and stderr as SCM_RIGHTS) forks a child that becomes a fresh
 * clang run with those arguments; the reply is the child's wait status
 * (an int), 4 bytes of padding and the child's CPU time in microseconds (a
 * long long), since the lab cannot see the CPU time of another process's child. Without the variable the process is a plain clang.
 *
 * Built at first use by ebpf_magic/core/warm_clang.py with the lab's clang.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef int (*main_fn)(int, char **, char **);
typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void), void *);

extern char **environ;

static char request[1 << 16];

/* argv for the child: the request's words, NULL, then the environment, as the kernel lays them out
 * (glibc finds environ just past argv's NULL). */
static char **child_argv(char *words, char *end, int *argc)
{
    int n = 0, envc = 0;
    for (char *p = words; p < end; p += strlen(p) + 1)
        n++;
    while (environ[envc])
        envc++;
    char **v = calloc(n + envc + 2, sizeof(char *));
    if (!v)
        _exit(127);
    int i = 0;
    for (char *p = words; p < end; p += strlen(p) + 1)
        v[i++] = p;
    v[i++] = NULL;
    memcpy(v + i, environ, (envc + 1) * sizeof(char *));
    *argc = n;
    return v;
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end)
{
    start_fn start = (start_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    const char *server = getenv("EBPF_LAB_CLANG_SERVER");
    if (!server)
        return start(main, argc, argv, init, fini, rtld_fini, stack_end);
    int sock = atoi(server);
    /* what clang itself may start must not become a server too */
    unsetenv("EBPF_LAB_CLANG_SERVER");
    unsetenv("LD_PRELOAD");
    for (;;) {
        int fds[3];
        char control[CMSG_SPACE(sizeof(fds))];
        struct iovec iov = { request, sizeof(request) - 1 };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = control, .msg_controllen = sizeof(control) };
        ssize_t len = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (len <= 0)
            _exit(0); /* the lab closed its end */
        request[len] = 0;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(fds)))
            _exit(2);
        memcpy(fds, CMSG_DATA(c), sizeof(fds));
        pid_t pid = fork();
        if (pid == 0) {
            close(sock);
            for (int i = 0; i < 3; i++)
                if (dup2(fds[i], i) < 0)
                    _exit(127);
            char *words = request + strlen(request) + 1;
            if (chdir(request) != 0)
                _exit(127);
            int n;
            char **v = child_argv(words, request + len, &n);
            return start(main, n, v, init, fini, rtld_fini, stack_end);
        }
        for (int i = 0; i < 3; i++)
            close(fds[i]);
        struct { int status; int pad; long long cpu_us; } reply = { 127 << 8, 0, 0 };
        struct rusage ru = {0};
        while (pid > 0 && wait4(pid, &reply.status, 0, &ru) < 0 && errno == EINTR)
            ;
        reply.cpu_us = ru.ru_utime.tv_sec * 1000000LL + ru.ru_utime.tv_usec +
                       ru.ru_stime.tv_sec * 1000000LL + ru.ru_stime.tv_usec;
        if (send(sock, &reply, sizeof(reply), MSG_NOSIGNAL) != sizeof(reply))
            _exit(0);
    }
}
