/* Host board: the portable core as a native process, for tests, sanitizers and fuzzing.
 *
 *   qp_host --pty          create a pseudo-terminal, print "PTY <path>" on stdout, serve it
 *   qp_host --device PATH  serve an existing tty or fifo-like device
 *   qp_host --stdio        serve stdin/stdout (exits at end of input)
 *
 * Ticks are CLOCK_MONOTONIC nanoseconds, so ACTION's infer_ticks is wall time.
 * Received bytes take the STM32F405 board's path: into a qp_ring_t (here from read()
 * instead of the UART interrupt), drained by qp_device_poll. read() asks only for the
 * ring's free space, so the kernel's buffer holds the rest and nothing is dropped.
 */
#define _XOPEN_SOURCE 600 /* posix_openpt, grantpt, unlockpt, ptsname */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "qp_device.h"

#ifndef QP_BUILD_ID
#define QP_BUILD_ID "host"
#endif

static uint32_t host_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

static qp_ring_t rx_ring;

/* No reset register and no watchdog: reset cause unknown, watchdog 0. */
static const qp_board_t HOST_BOARD = {QP_BUILD_ID, host_ticks, 1000000000u,
                                      QP_TICK_HOST_CLOCK, QP_RESET_UNKNOWN, 0, 0, &rx_ring};

static qp_device_t device;

static int write_all(int fd, const uint8_t *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Raw 8-bit mode: no echo, no line editing, no CR/LF translation. */
static int make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    t.c_oflag &= ~(tcflag_t)OPOST;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
    t.c_cflag |= CS8;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    return tcsetattr(fd, TCSANOW, &t);
}

static int serve(int in_fd, int out_fd)
{
    static uint8_t buf[QP_RX_RING_SIZE];
    static uint8_t reply[QP_MAX_FRAME];
    for (;;) {
        /* Never 0: the poll loop below always leaves the ring empty. */
        size_t room = QP_RX_RING_SIZE - qp_ring_count(&rx_ring);
        ssize_t got = read(in_fd, buf, room);
        ssize_t i;
        size_t n;
        if (got == 0) {
            return 0;
        }
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("qp_host: read");
            return 1;
        }
        for (i = 0; i < got; i++) {
            qp_ring_push(&rx_ring, buf[i]); /* the interrupt handler's job on the board */
        }
        /* The main loop's job: answer every frame the ring completes. */
        while ((n = qp_device_poll(&device, reply)) > 0) {
            if (write_all(out_fd, reply, n) != 0) {
                perror("qp_host: write");
                return 1;
            }
        }
    }
}

static int serve_pty(void)
{
    const char *path;
    int slave;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        perror("qp_host: posix_openpt");
        return 1;
    }
    path = ptsname(master);
    /* Holding the slave open keeps the master readable while clients come and go. */
    slave = path != NULL ? open(path, O_RDWR | O_NOCTTY) : -1;
    if (slave < 0 || make_raw(slave) != 0) {
        perror("qp_host: pty slave");
        return 1;
    }
    printf("PTY %s\n", path);
    fflush(stdout);
    return serve(master, master);
}

static int serve_device(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, "qp_host: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (isatty(fd)) {
        make_raw(fd);
    }
    return serve(fd, fd);
}

int main(int argc, char **argv)
{
    qp_ring_init(&rx_ring);
    qp_device_init(&device, &HOST_BOARD); /* runs the policy self-test: INFO reports it */
    if (device.selftest == QP_SELFTEST_FAILED) {
        int i;
        fprintf(stderr, "qp_host: the policy self-test failed for model ");
        for (i = 0; i < 8; i++) {
            fprintf(stderr, "%02x", device.model_hash[i]);
        }
        fprintf(stderr, "...; serving anyway, so that INFO can say so\n");
    }
    if (argc == 2 && strcmp(argv[1], "--pty") == 0) {
        return serve_pty();
    }
    if (argc == 2 && strcmp(argv[1], "--stdio") == 0) {
        return serve(STDIN_FILENO, STDOUT_FILENO);
    }
    if (argc == 3 && strcmp(argv[1], "--device") == 0) {
        return serve_device(argv[2]);
    }
    fprintf(stderr, "usage: %s --pty | --stdio | --device PATH\n", argv[0]);
    return 2;
}
