/*
 * echoload: a closed-loop load generator for TCP echo servers.
 *
 *   echoload [-c CONNS] [-s SIZE] [-w WARMUP_S] [-d DURATION_S] [-p SERVER_PID] HOST PORT
 *   echoload -i [-c CONNS] [-s SIZE] HOST PORT
 *
 * Load mode: open CONNS connections; on each, send a SIZE-byte message, read exactly SIZE bytes
 * back, and repeat. After WARMUP_S seconds the counters are reset and DURATION_S seconds are
 * measured. One JSON object goes to stdout: round trips, seconds, round trips/s, latency
 * percentiles (microseconds) and errors, and the share of a core that this client and (given
 * -p) the server used while measured. When this client and the server are each pinned to one
 * core, "client_core_other_pct" and "server_core_other_pct" say how much of those cores anything
 * else used meanwhile (other processes, the hypervisor): a run where they exceed a few percent
 * was disturbed, and says less about the server.
 *
 * Idle mode (-i): open CONNS connections, do one round trip on each (so the server has accepted
 * every connection and its handler is waiting for the next message), print {"event": "ready"}
 * and hold the connections until stdin reaches EOF or a signal ends the process.
 *
 * It is written in C so that the client costs little and the same client drives every server:
 * one thread, one epoll instance, non-blocking sockets, no allocation after start-up.
 * Connections are opened at most MAX_CONNECTING at a time so that no server's accept backlog
 * overflows (an overflow costs a one-second SYN retransmit that would be measured as latency).
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTING 64
#define SETUP_TIMEOUT_S 60.0
#define READ_CHUNK 65536
#define MAX_EVENTS 256

/* ---------------------------------------------------------------- latency histogram
 * Log-linear buckets over nanoseconds: values below 64 ns get one bucket each; every range
 * [2^k, 2^(k+1)) above that is split into 64 equal buckets, so a reported percentile is
 * within 1/64 (1.6 %) of the true value whatever its magnitude, in a few KiB of memory.
 */
#define SUB_BITS 6
#define SUB_COUNT (1 << SUB_BITS)
#define BUCKETS (SUB_COUNT + (64 - SUB_BITS) * SUB_COUNT)

struct histogram {
    uint64_t count[BUCKETS];
    uint64_t total;
    uint64_t sum_ns;
    uint64_t max_ns;
};

static int bucket_of(uint64_t ns)
{
    if (ns < SUB_COUNT)
        return (int)ns;
    int k = 63 - __builtin_clzll(ns); /* ns is in [2^k, 2^(k+1)), k >= SUB_BITS */
    int sub = (int)(ns >> (k - SUB_BITS)) - SUB_COUNT;
    return SUB_COUNT + (k - SUB_BITS) * SUB_COUNT + sub;
}

/* The middle of a bucket's range, in nanoseconds. */
static double bucket_value(int index)
{
    if (index < SUB_COUNT)
        return index;
    int k = (index - SUB_COUNT) / SUB_COUNT + SUB_BITS;
    int sub = (index - SUB_COUNT) % SUB_COUNT;
    double width = (double)(1ULL << (k - SUB_BITS));
    return (SUB_COUNT + sub) * width + width / 2;
}

static void histogram_add(struct histogram *h, uint64_t ns)
{
    h->count[bucket_of(ns)]++;
    h->total++;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

static double histogram_percentile_us(const struct histogram *h, double p)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)h->total + 0.999999); /* ceil, and >= 1 */
    uint64_t seen = 0;
    for (int i = 0; i < BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank)
            return bucket_value(i) / 1000.0;
    }
    return (double)h->max_ns / 1000.0;
}

/* ---------------------------------------------------------------- connections */

enum conn_state { CONNECTING, IN_ROUND_TRIP, WAITING, CLOSED };

struct conn {
    int fd;
    enum conn_state state;
    size_t sent;        /* bytes of the current message written so far */
    size_t received;    /* bytes of its echo read so far */
    uint64_t start_ns;  /* when the current round trip began */
    uint64_t measured;  /* round trips completed while measuring */
    int want_write;     /* registered for EPOLLOUT because a write would block */
};

enum phase { SETUP, WARMUP, MEASURE, DRAIN };

static struct {
    int epfd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    size_t size;
    char *message;
    enum phase phase;
    struct conn *conns;
    int conns_total;
    int opened;         /* connect() calls made so far */
    int connecting;     /* opened but not yet through their first round trip */
    int established;    /* through their first round trip */
    int busy;           /* in a round trip (load phases) */
    int alive;
    uint64_t errors;
    struct histogram hist;
} g;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CPU time (user + system) used so far by process `pid`, or by this process if pid is 0. */
static double cpu_seconds(int pid)
{
    if (pid == 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
               + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    }
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which may itself contain spaces: state is field 3,
     * utime and stime are fields 14 and 15, in clock ticks. */
    char *rest = strrchr(buf, ')');
    unsigned long utime, stime;
    if (!rest || sscanf(rest + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                        &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Busy time of CPU `core` so far (everything but idle and iowait, plus the time the hypervisor
 * stole from it), from /proc/stat; -1 if unknown. */
static double core_busy_seconds(int core)
{
    if (core < 0)
        return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512], name[16];
    snprintf(name, sizeof name, "cpu%d ", core);
    double busy = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
        if (strncmp(line, name, strlen(name)) == 0
            && sscanf(line + strlen(name), "%llu %llu %llu %llu %llu %llu %llu %llu", &user,
                      &nice, &sys, &idle, &iowait, &irq, &softirq, &steal) == 8) {
            busy = (double)(user + nice + sys + irq + softirq + steal)
                   / (double)sysconf(_SC_CLK_TCK);
            break;
        }
    }
    fclose(f);
    return busy;
}

/* The one CPU `pid` may run on, or -1 if it is not pinned to exactly one. */
static int pinned_core(int pid)
{
    cpu_set_t set;
    if (pid <= 0 || sched_getaffinity(pid, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &set))
            return i;
    return -1;
}

/* CPU used by this client, the server and the cores they are pinned to, at one moment. */
struct usage {
    double client, server, client_core, server_core;
};

static struct {
    int server_pid, client_core, server_core;
} watch;

static struct usage usage_now(void)
{
    struct usage u = {cpu_seconds(0), -1, core_busy_seconds(watch.client_core),
                      core_busy_seconds(watch.server_core)};
    if (watch.server_pid > 0)
        u.server = cpu_seconds(watch.server_pid);
    return u;
}

static void die(const char *what)
{
    fprintf(stderr, "echoload: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_events(struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
}

static void conn_fail(struct conn *c, const char *why)
{
    if (g.phase == SETUP) {
        /* Every connection must be up before measuring; a half-open set would skew it. */
        fprintf(stderr, "echoload: connection %d failed during setup: %s\n", c->fd, why);
        exit(1);
    }
    g.errors++;
    if (c->state == IN_ROUND_TRIP)
        g.busy--;
    close(c->fd);
    c->state = CLOSED;
    g.alive--;
}

static void open_one(struct conn *c)
{
    c->fd = socket(g.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket");
    int one = 1;
    /* Every server gets TCP_NODELAY too; without it a split echo could wait on Nagle. */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&g.addr, g.addrlen) < 0 && errno != EINPROGRESS)
        die("connect");
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    g.opened++;
    g.connecting++;
    g.alive++;
}

/* Write what is left of the message; wait for EPOLLOUT only if the socket buffer is full. */
static void send_rest(struct conn *c)
{
    while (c->sent < g.size) {
        ssize_t n = write(c->fd, g.message + c->sent, g.size - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) {
                if (!c->want_write) {
                    c->want_write = 1;
                    set_events(c, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            conn_fail(c, strerror(errno));
            return;
        }
        c->sent += (size_t)n;
    }
    if (c->want_write) {
        c->want_write = 0;
        set_events(c, EPOLLIN);
    }
}

static void start_round_trip(struct conn *c)
{
    if (c->state != IN_ROUND_TRIP)
        g.busy++;
    c->state = IN_ROUND_TRIP;
    c->sent = 0;
    c->received = 0;
    c->start_ns = now_ns();
    send_rest(c);
}

static void round_trip_done(struct conn *c)
{
    if (g.phase == SETUP || g.phase == DRAIN) {
        c->state = WAITING; /* until every connection is up, or for good */
        g.busy--;
        if (g.phase == SETUP) {
            g.connecting--;
            g.established++;
        }
        return;
    }
    uint64_t now = now_ns();
    if (g.phase == MEASURE) {
        histogram_add(&g.hist, now - c->start_ns);
        c->measured++;
    }
    start_round_trip(c);
}

static void on_readable(struct conn *c)
{
    static char buf[READ_CHUNK];
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0) {
        if (errno != EAGAIN)
            conn_fail(c, strerror(errno));
        return;
    }
    if (n == 0) {
        conn_fail(c, "server closed the connection");
        return;
    }
    if (c->state != IN_ROUND_TRIP || c->received + (size_t)n > g.size) {
        conn_fail(c, "server sent more than was sent to it");
        return;
    }
    c->received += (size_t)n;
    if (c->received == g.size && c->sent == g.size)
        round_trip_done(c);
}

static void on_connected(struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        conn_fail(c, strerror(err));
        return;
    }
    set_events(c, EPOLLIN);
    start_round_trip(c); /* the setup round trip proves the server is handling it */
}

static void handle(struct conn *c, uint32_t events)
{
    if (c->state == CONNECTING) {
        on_connected(c);
        return;
    }
    if ((events & EPOLLOUT) && c->state == IN_ROUND_TRIP)
        send_rest(c);
    if (c->state != CLOSED && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        on_readable(c);
}

/* ---------------------------------------------------------------- setup and main */

static void resolve(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "echoload: %s:%s: %s\n", host, port, gai_strerror(rc));
        exit(2);
    }
    memcpy(&g.addr, res->ai_addr, res->ai_addrlen);
    g.addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

/* 10,000 connections need more descriptors than the usual soft limit of 1,024. */
static void raise_fd_limit(int needed)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)needed) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)needed ? rl.rlim_max : (rlim_t)needed;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: echoload [-i] [-c CONNS] [-s SIZE] [-w WARMUP_S] [-d DURATION_S] "
                    "[-p SERVER_PID] HOST PORT\n");
    exit(2);
}

/* Percent of `seconds` that the CPU time between `a` and `b` represents; -1 if unknown. */
static double pct(double a, double b, double seconds)
{
    return a < 0 || b < 0 ? -1 : 100 * (b - a) / seconds;
}

/* How much of a core something other than its own process used; -1 if unknown. */
static double other_pct(double core_pct, double own_pct)
{
    if (core_pct < 0 || own_pct < 0)
        return -1;
    /* Ticks are sampled, so a quiet core can read a little below its process's own share. */
    return core_pct > own_pct ? core_pct - own_pct : 0;
}

static void print_result(double seconds, struct usage start, struct usage end)
{
    const struct histogram *h = &g.hist;
    /* Fairness: a server that favours some connections shows a wide min..max spread here
     * (and a long latency tail) even when its total is good. */
    uint64_t fewest = UINT64_MAX, most = 0;
    for (int i = 0; i < g.conns_total; i++) {
        uint64_t n = g.conns[i].measured;
        fewest = n < fewest ? n : fewest;
        most = n > most ? n : most;
    }
    double client_pct = pct(start.client, end.client, seconds);
    double server_pct = pct(start.server, end.server, seconds);
    double client_other = other_pct(pct(start.client_core, end.client_core, seconds), client_pct);
    double server_other = other_pct(pct(start.server_core, end.server_core, seconds), server_pct);
    printf("{\"connections\": %d, \"size\": %zu, \"round_trips\": %" PRIu64 ", "
           "\"seconds\": %.6f, \"round_trips_per_s\": %.1f, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.1f, \"errors\": %" PRIu64 ", "
           "\"client_cpu_pct\": %.1f, \"server_cpu_pct\": %.1f, "
           "\"client_core_other_pct\": %.1f, \"server_core_other_pct\": %.1f, "
           "\"conn_min_round_trips\": %" PRIu64 ", \"conn_max_round_trips\": %" PRIu64 "}\n",
           g.conns_total, g.size, h->total, seconds, (double)h->total / seconds,
           histogram_percentile_us(h, 0.50), histogram_percentile_us(h, 0.99),
           (double)h->max_ns / 1000.0, h->total ? (double)h->sum_ns / (double)h->total / 1000.0 : 0,
           g.errors, client_pct, server_pct, client_other, server_other, fewest, most);
}

int main(int argc, char **argv)
{
    int idle = 0, server_pid = -1, opt;
    double warmup_s = 1.0, duration_s = 4.0;
    g.conns_total = 100;
    g.size = 64;
    while ((opt = getopt(argc, argv, "ic:s:w:d:p:")) != -1) {
        switch (opt) {
        case 'i': idle = 1; break;
        case 'c': g.conns_total = atoi(optarg); break;
        case 's': g.size = (size_t)atol(optarg); break;
        case 'w': warmup_s = atof(optarg); break;
        case 'd': duration_s = atof(optarg); break;
        case 'p': server_pid = atoi(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 2 || g.conns_total < 1 || g.size < 1 || duration_s <= 0)
        usage();
    resolve(argv[optind], argv[optind + 1]);
    raise_fd_limit(g.conns_total + 64);

    g.message = malloc(g.size);
    struct conn *conns = g.conns = calloc((size_t)g.conns_total, sizeof *conns);
    if (!g.message || !conns)
        die("malloc");
    memset(g.message, 'x', g.size);
    g.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g.epfd < 0)
        die("epoll_create1");

    struct epoll_event events[MAX_EVENTS];
    uint64_t setup_deadline = now_ns() + (uint64_t)(SETUP_TIMEOUT_S * 1e9);
    uint64_t phase_end = 0, measure_start = 0;
    watch.server_pid = server_pid;
    watch.server_core = pinned_core(server_pid);
    watch.client_core = pinned_core(getpid());
    struct usage usage_start = {0, -1, -1, -1};
    g.phase = SETUP;
    for (;;) {
        if (g.phase == SETUP) {
            while (g.opened < g.conns_total && g.connecting < MAX_CONNECTING)
                open_one(&conns[g.opened]);
            if (g.established == g.conns_total) {
                if (idle)
                    break;
                g.phase = WARMUP;
                phase_end = now_ns() + (uint64_t)(warmup_s * 1e9);
                for (int i = 0; i < g.conns_total; i++)
                    start_round_trip(&conns[i]);
            } else if (now_ns() > setup_deadline) {
                fprintf(stderr, "echoload: only %d of %d connections up after %.0f s\n",
                        g.established, g.conns_total, SETUP_TIMEOUT_S);
                return 1;
            }
        }
        if (g.phase != SETUP) {
            uint64_t now = now_ns();
            if (g.phase == WARMUP && now >= phase_end) {
                g.phase = MEASURE;
                memset(&g.hist, 0, sizeof g.hist); /* errors keep counting from setup */
                measure_start = now;
                usage_start = usage_now();
                phase_end = now + (uint64_t)(duration_s * 1e9);
            } else if (g.phase == MEASURE && now >= phase_end) {
                print_result((double)(now - measure_start) / 1e9, usage_start, usage_now());
                fflush(stdout);
                /* Let the round trips in flight finish, so that closing sends every server
                 * a plain EOF rather than a reset for echoes left unread. */
                g.phase = DRAIN;
                phase_end = now + 1000000000ULL;
            }
            if (g.phase == DRAIN && (g.busy == 0 || now >= phase_end))
                return 0;
            if (g.alive == 0) {
                fprintf(stderr, "echoload: every connection failed\n");
                return 1;
            }
        }

        int n = epoll_wait(g.epfd, events, MAX_EVENTS, 10);
        if (n < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++)
            handle(events[i].data.ptr, events[i].events);
    }

    /* Idle mode: every connection is open and its server handler is waiting in recv. */
    printf("{\"event\": \"ready\", \"connections\": %d}\n", g.established);
    fflush(stdout);
    char scratch[256];
    while (read(STDIN_FILENO, scratch, sizeof scratch) > 0)
        ;
    return 0;
}
