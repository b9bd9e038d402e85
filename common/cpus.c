/*
 * cpus.c - see cpus.h. Only cgroup v2 is read (Debian 12 and current Kubernetes nodes
 * use it); under cgroup v1 the affinity mask alone decides.
 */
#include "cpus.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cpus_from_cpu_max(const char *line)
{
    long long quota, period;
    if (strncmp(line, "max", 3) == 0)
        return 0;
    if (sscanf(line, "%lld %lld", &quota, &period) != 2 || quota <= 0 || period <= 0)
        return 0;
    return (int)((quota + period - 1) / period);
}

static int cgroup_quota_cpus(void)
{
    char line[512], path[1024];
    FILE *f = fopen("/proc/self/cgroup", "r");
    int n = 0;
    if (!f)
        return 0;
    path[0] = 0;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", line + 3);
            break;
        }
    }
    fclose(f);
    if (!path[0] || !(f = fopen(path, "r")))
        return 0;
    if (fgets(line, sizeof(line), f))
        n = cpus_from_cpu_max(line);
    fclose(f);
    return n;
}

int cpus_available(void)
{
    cpu_set_t set;
    int n = 1, q;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    q = cgroup_quota_cpus();
    if (q > 0 && q < n)
        n = q;
    return n > 0 ? n : 1;
}
