/*
 * fileio_test.c - common/fileio: whole-file reads (sizes around the limit, a missing file,
 * an empty one) and atomic writes (contents, mode, no temporary file left, a relative
 * path, a directory that does not exist).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "tap.h"

static char dir[] = "/tmp/fileio_test.XXXXXX";

static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    char path[600], *buf = NULL;
    size_t len = 0;
    struct stat st;
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/a.pem", dir);

    is_int(file_write_atomic(path, "hello\n", 6, 0600, true), 0, "write a file");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 6, "mode 0600, 6 bytes");
    is_int(entries(), 1, "no temporary file left beside it");
    is_int(file_read(path, 100, &buf, &len), 0, "read it back");
    ok(buf && len == 6 && !strcmp(buf, "hello\n"), "the same bytes, NUL-terminated");
    free(buf);
    is_int(file_write_atomic(path, "replaced", 8, 0644, false), 0, "replace it");
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "the new mode 0644");
    is_int(file_read(path, 8, &buf, &len), 0, "a file of exactly the limit is read");
    ok(len == 8 && !strcmp(buf, "replaced"), "its contents");
    free(buf);
    is_int(file_read(path, 7, &buf, &len), -EFBIG, "one byte over the limit: EFBIG");

    char *big = malloc(100000);
    memset(big, 'x', 100000);
    is_int(file_write_atomic(path, big, 100000, 0600, false), 0, "a 100 kB file");
    is_int(file_read(path, 1 << 20, &buf, &len), 0, "read in pieces past the first buffer");
    ok(len == 100000 && !memcmp(buf, big, len) && buf[len] == 0, "all 100000 bytes");
    free(buf);
    free(big);

    is_int(file_write_atomic(path, "", 0, 0600, false), 0, "an empty file");
    is_int(file_read(path, 10, &buf, &len), 0, "read it");
    ok(len == 0 && buf[0] == 0, "empty, NUL-terminated");
    free(buf);

    snprintf(path, sizeof(path), "%s/missing", dir);
    is_int(file_read(path, 10, &buf, &len), -ENOENT, "a missing file: ENOENT");
    snprintf(path, sizeof(path), "%s/nodir/x", dir);
    is_int(file_write_atomic(path, "x", 1, 0600, false), -ENOENT, "into a missing directory: ENOENT");
    is_int(file_write_atomic("/", "x", 1, 0600, false), -EISDIR, "no file name: EISDIR");

    if (chdir(dir) == 0) {
        is_int(file_write_atomic("rel.txt", "r", 1, 0600, true), 0, "a relative name");
        ok(access("rel.txt", F_OK) == 0, "written in the current directory");
    }
    is_int(entries(), 2, "only the two files, no temporaries");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}
