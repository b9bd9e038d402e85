/*
 * cpus.h - how many CPUs this process may really use: the affinity mask, capped by
 * the cgroup v2 CPU quota (cpu.max) of the process's cgroup, rounded up, at least 1.
 */
#ifndef RINGMESH_CPUS_H
#define RINGMESH_CPUS_H

/* The CPU count for sizing worker pools. Reads /proc/self/cgroup and cpu.max; never fails. */
int cpus_available(void);
/* Pure part, for tests: the CPUs a cpu.max line ("max 100000", "150000 100000") allows,
 * rounded up; 0 when unlimited or unparsable. */
int cpus_from_cpu_max(const char *line);

#endif
