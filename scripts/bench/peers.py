#!/usr/bin/env python3
"""rdmix beside PulseAudio, same machine, same run, same workload: N concurrent 20 s `aplay`
clients of 48 kHz S16 stereo, into a null sink (rdmix: the `null` slave; PulseAudio:
module-null-sink). Run by scripts/bench/peers.sh as an unprivileged user.

Figures:
- per stream: CPU of the clients plus the server, in % of one core per stream. Clients are
  reaped with wait4 (exact rusage). rdmix's pump is a double-forked daemon: this process is a
  child subreaper, so it reaps the pump too and gets its lifetime rusage, linger included.
  PulseAudio's CPU is the sum of its threads' /proc/PID/task/*/schedstat over the run.
- steady state: the pump's CPU per device period in the middle of the run (schedstat).
- idle: the server's wake-ups (context switches) and CPU in 10 s while a client is open and
  prepared but not running, and again after it played and stopped.
- low latency: 8 clients at 64-frame periods (`--period-size=64 --buffer-size=256`) on a
  64-frame slave period for 30 s: underruns, slave xruns, pump CPU.
"""
import argparse, ctypes, os, re, struct, subprocess, sys, tempfile, time

PR_SET_CHILD_SUBREAPER = 36
RATE = 48000


def wav(path, seconds):
    frames = RATE * seconds
    data = (struct.pack("<hh", 1000, -1000) * 50) * (frames // 50)
    hdr = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
           + struct.pack("<IHHIIHH", 16, 1, 2, RATE, RATE * 4, 4, 16) + b"data" + struct.pack("<I", len(data)))
    with open(path, "wb") as f:
        f.write(hdr + data)


def tasks(pid):
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []


def task_ns(pid):
    """CPU nanoseconds of every thread of pid."""
    total = 0
    for t in tasks(pid):
        try:
            total += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def switches(pid):
    """Context switches (voluntary + involuntary) of every thread of pid: its wake-ups."""
    total = 0
    for t in tasks(pid):
        try:
            for line in open(f"/proc/{pid}/task/{t}/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu(ru):
    return ru.ru_utime + ru.ru_stime


def wait_for(cond, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    sys.exit(f"bench_peers: {what} did not happen within {limit} s")


def find_pump(key):
    """The pump daemon for key, once it is ours: the plugin starts it, it forks away from
    its first process, and the orphan comes to us, the subreaper."""
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
            ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if cmd and cmd[0].endswith(b"rdmix-pump") and str(key).encode() in cmd and ppid == os.getpid():
            return int(p)
    return None


def reap(pid, limit):
    """Waits for pid (our child, or an orphan we adopted as subreaper); its rusage."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got, _, ru = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return ru
        time.sleep(0.01)
    sys.exit(f"bench_peers: pid {pid} did not exit within {limit} s")


class Rdmix:
    name = "rdmix"

    def __init__(self, build, period, key):
        self.period, self.key = period, key
        self.dir = tempfile.mkdtemp(prefix="rdmix-peers-")
        with open(os.path.join(self.dir, ".asoundrc"), "w") as f:
            f.write(f'''pcm_type.rdmix {{ lib "{build}/libasound_module_pcm_rdmix.so" }}
pcm.!default {{ type rdmix; ipc_key {key}
  slave {{ pcm "null"; period_size {period}; rate {RATE}; channels 2; format S16_LE }} }}
''')
        self.label = f"rdmix, period {period}"

    def env(self):
        return dict(os.environ, HOME=self.dir, RDMIX_PUMP_LOG=os.path.join(self.dir, "pump.log"))

    def device(self):
        return []

    def server(self):
        return wait_for(lambda: find_pump(self.key), 10, "the pump's start")

    def finish(self, pid):
        """The pump exits 0.5 s after its last client; its lifetime CPU and its own report."""
        ru = reap(pid, 15)
        log = open(os.path.join(self.dir, "pump.log")).read()
        m = re.findall(r"after (\d+) periods, (\d+) slave xruns; cpu (\d+) us, (\d+) wake-ups", log)
        periods, xruns, _, wakeups = map(int, m[-1]) if m else (0, 0, 0, 0)
        os.remove(os.path.join(self.dir, "pump.log"))
        return cpu(ru), dict(periods=periods, xruns=xruns, wakeups=wakeups)


class Pulse:
    name = "PulseAudio"
    label = "PulseAudio 16.1"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pa-peers-")
        with open(os.path.join(self.dir, "pa.pa"), "w") as f:
            f.write(f"load-module module-null-sink sink_name=null rate={RATE} channels=2\n"
                    "load-module module-native-protocol-unix\nset-default-sink null\n")
        self.proc = None

    def env(self):
        return dict(os.environ, HOME=self.dir)

    def device(self):
        return ["-D", "pulse"]

    def start(self):
        self.proc = subprocess.Popen(
            ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--log-target=stderr",
             "-F", os.path.join(self.dir, "pa.pa")], env=self.env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sock = os.path.join(os.environ["XDG_RUNTIME_DIR"], "pulse", "native")
        wait_for(lambda: os.path.exists(sock) and len(tasks(self.proc.pid)) > 1, 20, "PulseAudio's start")
        time.sleep(0.5)  # let its start-up work settle before counting

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def play(sys_, n, seconds, extra=(), quiet=True):
    """N aplay clients at once; (client CPU s, elapsed s, server CPU s, report)."""
    d = sys_.dir
    f = os.path.join(d, f"s{seconds}.wav")
    if not os.path.exists(f):
        wav(f, seconds)
    server = getattr(sys_, "proc", None)
    before = task_ns(server.pid) if server else 0
    t0 = time.monotonic()
    args = ["aplay"] + (["-q"] if quiet else []) + list(sys_.device()) + list(extra) + [f]
    procs = [subprocess.Popen(args, cwd=d, env=sys_.env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(n)]
    pump = sys_.server() if isinstance(sys_, Rdmix) else None
    steady = None
    if pump and seconds >= 10:
        # The middle of the run: every client playing, nobody starting or draining.
        time.sleep(3)
        a, ta = task_ns(pump), time.monotonic()
        time.sleep(seconds - 6)
        b, tb = task_ns(pump), time.monotonic()
        periods = (tb - ta) * RATE / sys_.period
        steady = (b - a) / 1000 / periods
    client = 0.0
    underruns = 0
    for p in procs:
        err = p.stderr.read().decode(errors="replace")
        underruns += err.count("underrun")
        client += cpu(reap(p.pid, seconds * 3 + 30))
        p.returncode = 0
    elapsed = time.monotonic() - t0
    if pump:
        server_cpu, report = sys_.finish(pump)
    else:
        server_cpu, report = (task_ns(server.pid) - before) / 1e9, {}
    report.update(steady_us=steady, underruns=underruns)
    return client, elapsed, server_cpu, report


def idle(sys_, seconds=10):
    """Server wake-ups and CPU while a client is open and prepared, then after it played."""
    d = sys_.dir
    holder = subprocess.Popen(["aplay", "-q", *sys_.device(), "-t", "raw", "-f", "S16_LE", "-r", str(RATE),
                               "-c", "2", "-"], cwd=d, env=sys_.env(), stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = sys_.server() if isinstance(sys_, Rdmix) else sys_.proc.pid
    out = []
    time.sleep(1)
    for phase in ("open, prepared, never started", "stopped after playing 1 s"):
        if phase.startswith("stopped"):
            holder.stdin.write(struct.pack("<hh", 1000, -1000) * RATE)
            holder.stdin.flush()
            time.sleep(3)  # plays 1 s (plus PulseAudio's 0.5 s buffer), runs dry, waits
        s0, c0 = switches(server), task_ns(server)
        time.sleep(seconds)
        out.append((phase, switches(server) - s0, (task_ns(server) - c0) / 1e9))
    holder.stdin.close()
    reap(holder.pid, 30)
    if isinstance(sys_, Rdmix):
        sys_.finish(server)
    return out


def pct(client, server, n, elapsed):
    return 100.0 * (client + server) / elapsed / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("bench_peers: cannot become a child subreaper")
    ns = [int(x) for x in a.clients.split(",")]
    key = 0x7e000000 + os.getpid() % 0x10000
    systems = [Rdmix(a.build, 256, key), Rdmix(a.build, 1024, key + 1), Pulse()]
    rows = {s.label: {n: [] for n in ns} for s in systems}
    detail = []
    for run in range(a.runs):
        for s in systems:
            for n in ns:
                if isinstance(s, Pulse):
                    s.start()
                client, elapsed, server, rep = play(s, n, a.seconds)
                if isinstance(s, Pulse):
                    s.stop()
                rows[s.label][n].append(pct(client, server, n, elapsed))
                detail.append((run, s.label, n, client, server, elapsed, rep))
                print(f"  run {run + 1} {s.label:18} N={n:<3} clients {client:6.3f} s  server {server:6.3f} s  "
                      f"in {elapsed:5.1f} s  {rep}", flush=True)

    print(f"\nCPU per stream, clients + server, % of one core (min-max of {a.runs} runs, "
          f"{a.seconds} s of 48 kHz S16 stereo per client):\n")
    print("| system | " + " | ".join(f"N={n}" for n in ns) + " |")
    print("|---|" + "---|" * len(ns))
    for label, by_n in rows.items():
        cells = [f"{min(v):.3f}-{max(v):.3f}" for v in by_n.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")

    print("\nOne client alone (N=1): its own CPU, and the server's")
    for run, label, n, client, server, elapsed, rep in detail:
        if n == 1:
            print(f"  run {run + 1} {label:18} client {client:.3f} s  server {server:.3f} s")
    print("\nrdmix pump, steady state (schedstat over the middle of the run): us of CPU per device period")
    for run, label, n, client, server, elapsed, rep in detail:
        if rep.get("steady_us") is not None:
            print(f"  run {run + 1} {label:18} N={n:<3} {rep['steady_us']:.1f} us/period, "
                  f"{rep['periods']} periods in {rep['wakeups']} wake-ups, lifetime {server:.3f} s")

    print("\nIdle: the server's wake-ups and CPU in 10 s")
    for s in systems[:2] + systems[2:]:
        if isinstance(s, Pulse):
            s.start()
        for phase, sw, c in idle(s):
            print(f"  {s.label:18} {phase:32} {sw:5d} wake-ups  {c:.4f} s CPU")
        if isinstance(s, Pulse):
            s.stop()

    print("\nLow latency: 8 clients at 64-frame periods, slave period 64, 30 s")
    low = Rdmix(a.build, 64, key + 2)
    client, elapsed, server, rep = play(low, 8, 30, ["--period-size=64", "--buffer-size=256"], quiet=False)
    print(f"  rdmix: {rep['underruns']} client underruns, {rep['xruns']} slave xruns, "
          f"pump {100 * server / elapsed:.2f}% of a core ({rep['steady_us']:.1f} us/period steady), "
          f"clients {100 * client / elapsed / 8:.2f}% each")


if __name__ == "__main__":
    main()
