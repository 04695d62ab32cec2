# Shared by the bench scripts (sourced): who else used the benchmark's CPUs. CPU 0 is the
# server's (and PostgreSQL's) and CPU 1 the load generator's only if nothing else on the machine
# runs there; a measurement reports the busy time of a CPU that is not its own processes', so a
# run disturbed by another job (a compiler, a test suite, autovacuum of another database) says so.

# user + nice + system jiffies of CPU $1 so far: interrupt and softirq time is left out (on
# loopback it is mostly the benchmark's own network traffic, and no process is charged for it).
cpu_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4}' /proc/stat; }

# utime + stime jiffies of process $1 and, when $2 names a running PostgreSQL data directory,
# of its postmaster and every child (backends, autovacuum, checkpointer). A child that exits
# between two readings (an autovacuum worker) would take its time out of the second one: the
# postmaster's cutime + cstime, its waited-for children's time, keeps it in. Jiffies are
# sampled per tick, so a few percent either way is accounting noise.
our_jiffies() {
  local pm
  {
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || true
    if [ -n "${2:-}" ] && [ -f "$2/postmaster.pid" ]; then
      pm=$(head -1 "$2/postmaster.pid")
      for p in $(ps -o pid= --ppid "$pm" 2>/dev/null || true); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done
      # After the children: one that exited while they were read has been reaped into it.
      awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat" 2>/dev/null || true
    fi
  } | awk '{s += $1} END {print s + 0}'
}

# The jiffies of the children a subshell waited for, from the output of `times` run at its end
# (file $1: the second line, user and system time as `XmY.YYYs`): wrk's CPU time.
children_jiffies() {
  awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {n = 0; for (i = 1; i <= 2; i++) {split($i, p, /[ms]/); n += p[1] * 60 + p[2]}; printf "%d", n * hz}' "$1"
}

# The share of a CPU, in percent, that others used: busy jiffies $1 of the CPU, jiffies $2 of
# our processes, over $3 nanoseconds. Past 100 % the accounting itself is wrong (our processes'
# time went down: one of them was missed), which is said on stderr rather than passed off as a
# disturbance.
other_pct() {
  awk -v b="$1" -v o="$2" -v ns="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    x = 100 * (b - o) / (ns / 1e9 * hz); if (x < 0) x = 0
    if (x > 100) printf "bench/cpu.sh: %.1f %% of a CPU used by others is impossible: our processes were miscounted\n", x > "/dev/stderr"
    printf "%.1f", x }'
}

# Steal jiffies of CPU $1 so far: time the hypervisor gave this virtual CPU's host core to
# someone else while the guest wanted to run (/proc/stat's eighth value). No process here is
# charged for it, so it is the one disturbance from outside the machine the guest can see.
cpu_steal() { awk -v c="cpu$1" '$1 == c {print $9}' /proc/stat; }

# Steal of CPUs 0 and 1 between two readings "S0 S1" ($1, then $2) over $3 nanoseconds, as
# whole percents "P0 P1".
steal_pct() {
  awk -v a="$1" -v b="$2" -v ns="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
    split(a, x, " "); split(b, y, " "); t = ns / 1e9 * hz; if (t <= 0) t = 1
    printf "%d %d", 100 * (y[1] - x[1]) / t + 0.5, 100 * (y[2] - x[2]) / t + 0.5 }'
}
