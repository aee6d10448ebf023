#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>
#include "CSwunisonShims.h"

int swunison_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}
int swunison_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_EXCHANGE);
}
long swunison_getdents64(int fd, void *buf, size_t count) {
    return syscall(SYS_getdents64, fd, buf, count);
}
long swunison_utime_omit(void) { return UTIME_OMIT; }
long swunison_utime_now(void) { return UTIME_NOW; }
int swunison_o_path(void) { return O_PATH; }
int swunison_o_noatime(void) { return O_NOATIME; }
int swunison_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int swunison_syncfs(int fd) { return syncfs(fd); }
int swunison_openat_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how = {
        .flags = (unsigned long long)flags,
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int swunison_open_unnamed(int dirfd, unsigned int mode) {
    return openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, (mode_t)mode);
}

int swunison_link_unnamed(int fd, int newdirfd, const char *newpath) {
    // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels; /proc/self/fd works for anyone.
    static int emptyPathRefused = 0;
    if (!__atomic_load_n(&emptyPathRefused, __ATOMIC_RELAXED)) {
        if (linkat(fd, "", newdirfd, newpath, AT_EMPTY_PATH) == 0) return 0;
        if (errno != ENOENT && errno != EPERM) return -1;
        __atomic_store_n(&emptyPathRefused, 1, __ATOMIC_RELAXED);
    }
    char procPath[64];
    snprintf(procPath, sizeof procPath, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, procPath, newdirfd, newpath, AT_SYMLINK_FOLLOW);
}

int swunison_set_mmap_threshold(int bytes) { return mallopt(M_MMAP_THRESHOLD, bytes); }
