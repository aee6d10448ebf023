#ifndef CSWUNISON_SHIMS_H
#define CSWUNISON_SHIMS_H
// Plain prototypes for Linux calls that Swift's Glibc module hides (they need _GNU_SOURCE).
// The definitions live in shims.c, which defines _GNU_SOURCE itself; this header must not,
// or it clashes with other C modules' view of the system headers (see PLATFORM-NOTES §4).
#include <stddef.h>
#include <stdint.h>

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing the target.
int swunison_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
/// renameat2(2) with RENAME_EXCHANGE: atomically swaps the two names.
int swunison_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
/// getdents64(2): raw directory records into buf; returns bytes read, 0 at end, -1 with errno.
long swunison_getdents64(int fd, void *buf, size_t count);
/// UTIME_OMIT / UTIME_NOW for utimensat(2).
long swunison_utime_omit(void);
long swunison_utime_now(void);
/// O_PATH and O_NOATIME open flags.
int swunison_o_path(void);
int swunison_o_noatime(void);
/// pipe2(2) with O_CLOEXEC: both ends close-on-exec from the start, so a child spawned by
/// another thread at the same moment cannot inherit them (and hold a pipe open for its life).
int swunison_pipe_cloexec(int fds[2]);
/// syncfs(2).
int swunison_syncfs(int fd);
/// openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: opens a
/// multi-component relative path below dirfd in one call, failing with ELOOP at any symlink and
/// EXDEV on any escape. -1 with errno ENOSYS (or EPERM under some seccomp filters) when the kernel
/// lacks openat2 (before Linux 5.6).
int swunison_openat_beneath(int dirfd, const char *path, int flags, unsigned int mode);
/// openat(2) with O_TMPFILE | O_WRONLY | O_CLOEXEC: an unnamed regular file in the directory
/// dirfd, freed on close unless linked. -1 with errno EOPNOTSUPP/EISDIR/EINVAL where the file
/// system (or kernel) lacks it.
int swunison_open_unnamed(int dirfd, unsigned int mode);
/// Gives the unnamed file fd the name `newpath` in newdirfd (fails with EEXIST if it exists):
/// linkat(2) with AT_EMPTY_PATH, or through /proc/self/fd when that is not permitted.
int swunison_link_unnamed(int fd, int newdirfd, const char *newpath);

/// XXH3-128 (xxHash 0.8), the content digest, compiled in from the system's xxhash.h (package
/// libxxhash-dev) so the binary needs no libxxhash at run time. A state hashes one stream at a
/// time and is not thread-safe.
typedef struct swunison_xxh3 swunison_xxh3;
/// A fresh state, ready for swunison_xxh3_update; NULL when out of memory.
swunison_xxh3 *swunison_xxh3_new(void);
void swunison_xxh3_free(swunison_xxh3 *state);
/// Starts a new stream (forgets everything fed so far).
void swunison_xxh3_reset(swunison_xxh3 *state);
void swunison_xxh3_update(swunison_xxh3 *state, const void *bytes, size_t count);
/// The digest of everything fed since the last reset, as 16 bytes in canonical (big-endian) order.
void swunison_xxh3_digest(const swunison_xxh3 *state, uint8_t out[16]);
/// XXH3-128 of one buffer, as 16 bytes in canonical order (no state to allocate).
void swunison_xxh3_oneshot(const void *bytes, size_t count, uint8_t out[16]);

/// mallopt(M_MMAP_THRESHOLD, bytes): allocations below `bytes` come from the heap, not from a
/// fresh mmap each. Returns mallopt's result (1 on success).
int swunison_set_mmap_threshold(int bytes);

#endif
