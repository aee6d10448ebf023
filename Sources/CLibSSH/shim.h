#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <libssh/server.h>
