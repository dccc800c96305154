"""proc_time.py - a whole process's cost: runs COMMAND N times (output discarded) and prints the
medians of its CPU time (user + system, from wait4's rusage: microseconds, unlike time(1)'s
hundredths) and wall time, and the fastest CPU time, as "cpu_s wall_s min_cpu_s".

usage: proc_time.py N COMMAND [ARG...]"""
import os
import statistics
import sys
import time

n, cmd = int(sys.argv[1]), sys.argv[2:]
cpu, wall = [], []
for _ in range(n):
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.execvp(cmd[0], cmd)
    _, status, ru = os.wait4(pid, 0)
    wall.append(time.perf_counter() - t0)
    if status != 0:
        sys.exit("proc_time.py: %s exited with status %d" % (cmd[0], status))
    cpu.append(ru.ru_utime + ru.ru_stime)
print("%.4f %.4f %.4f" % (statistics.median(cpu), statistics.median(wall), min(cpu)))
