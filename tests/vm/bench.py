#!/usr/bin/env python3
"""rdmix beside dmix on the same kernel and the same driver, in one run: N aplay clients of a
tone through rdmix on snd-aloop's playback substream 1, and through dmix on substream 0
(snd-aloop has mmap, so dmix can run there), both at period 256 and buffer 1024. Runs inside
the VM: scripts/bench/vm.sh. (snd-dummy's device 0 would be the natural mmap device, but a
second dmix client there fails to open, "unable to open slave": EINVAL, on this kernel.)

For each N it prints the CPU of all processes (the whole guest, from /proc/stat, less an
idle baseline measured the same way) per stream in % of one core, and the context switches
per second of the whole guest (every wake-up of any process), less the idle baseline.
Under TCG every instruction is emulated, so absolute costs are inflated; the ratio between
the two is the figure to read.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest  # noqa: E402  (the drivers, the world and the signals)

SECONDS = float(os.environ.get("RDMIX_BENCH_SECONDS", "8"))


def sample():
    with open("/proc/stat") as f:
        lines = f.read().splitlines()
    cpu = [int(x) for x in lines[0].split()[1:]]
    busy = sum(cpu) - cpu[3] - cpu[4]  # all but idle and iowait
    ctxt = next(int(l.split()[1]) for l in lines if l.startswith("ctxt "))
    return busy / os.sysconf("SC_CLK_TCK"), ctxt


def measure(run):
    t0, (b0, c0) = time.monotonic(), sample()
    run()
    t1, (b1, c1) = time.monotonic(), sample()
    return (b1 - b0) / (t1 - t0), (c1 - c0) / (t1 - t0), t1 - t0


def running(status):
    try:
        with open(status) as f:
            return "RUNNING" in f.read()
    except OSError:
        return False


def clients(w, dev, n, path, status):
    # The first client alone until the device runs: several first opens of one dmix at once
    # race, and lose with EINVAL ("unable to open slave"). rdmix is started the same way so
    # that both runs are alike.
    procs = [w.start(["aplay", "-q", "-D", dev, path])]
    guest.wait_for(f"{dev} running", lambda: running(status), 20)
    procs += [w.start(["aplay", "-q", "-D", dev, path]) for _ in range(n - 1)]
    for p in procs:
        guest.ok(w.finish(p, SECONDS * 4 + 30), f"aplay on {dev}")


def main():
    guest.aloop()
    # rdmix at its defaults (period 256, a third of a second filled ahead, rewinds); dmix
    # at period 256 and buffer 1024, as a user would set it for the same latency.
    w = guest.World("bench", guest.rdmix_rc("hw:Loopback,0,1", 0x5E00, "slave.period_size 256")
                    + 'pcm.dm { type dmix; ipc_key 7300; slave { pcm "hw:Loopback,0,0"; period_size 256; buffer_size 1024 } }\n')
    path = w.path("t.wav")
    guest.write_wav(path, guest.tone_frames(int(guest.RATE * SECONDS), 440, 0.1))
    idle_cpu, idle_ctxt, _ = measure(lambda: time.sleep(SECONDS))  # the baseline, not a wait
    print(f"idle guest: {idle_cpu * 100:.2f}% of a core, {idle_ctxt:.0f} context switches/s")
    print("| N | rdmix CPU/stream | dmix CPU/stream | ratio | rdmix wake-ups/s | dmix wake-ups/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for n in [int(x) for x in os.environ.get("RDMIX_BENCH_CLIENTS", "1,4,16").split(",")]:
        r_cpu, r_ctxt, r_t = measure(lambda: clients(w, "mix", n, path, "/proc/asound/Loopback/pcm0p/sub1/status"))
        d_cpu, d_ctxt, d_t = measure(lambda: clients(w, "dm", n, path, "/proc/asound/Loopback/pcm0p/sub0/status"))
        rc, dc = (r_cpu - idle_cpu) / n * 100, (d_cpu - idle_cpu) / n * 100
        rw, dw = r_ctxt - idle_ctxt, d_ctxt - idle_ctxt
        print(f"| {n} | {rc:.2f}% | {dc:.2f}% | {rc / dc:.2f} | {rw:.0f} | {dw:.0f} | {rw / dw:.2f} |"
              f"  ({r_t:.1f} s and {d_t:.1f} s for {SECONDS:.0f} s of audio)", flush=True)
    log = w.pumps_exited(20)
    print("rdmix slave xruns:", w.slave_xruns())
    pump_wakeups()
    capture_wakeups()
    change_latency()


def pump_wakeups():
    """The pump's own wake-ups per second of device time, from its exit line, filling the
    slave ahead and not: N aplay clients with their default buffers on the copy-only test
    driver, period 256, buffer 1024 (rdmix's default) and 4096 (issue 21's goal 1 asks for
    4 clients)."""
    guest.load_testcard()
    print()
    print("| buffer | N | pump wake-ups/s, filling ahead | pump wake-ups/s, every period | periods/s | slave xruns |")
    print("|---|---|---|---|---|---|")
    for buffer, n in [(b, int(x)) for b in (1024, 4096, 0)
                      for x in os.environ.get("RDMIX_BENCH_CLIENTS", "1,4,16").split(",")]:
        got = {}
        for fill in ("true", "false"):
            # 0: rdmix's default buffer (filling ahead, a third of a second; not, 4 periods).
            size = f"buffer_size {buffer}; " if buffer else ""
            w = guest.World(f"wake{fill}{n}{buffer}", f'pcm.mix {{ type rdmix; ipc_key {0x5E10 + buffer + n * 2 + (fill == "true")}; '
                            f'slave {{ pcm "hw:RdmixTest"; period_size 256; {size}fill_ahead {fill} }} }}\n')
            path = w.path("t.wav")
            guest.write_wav(path, guest.tone_frames(int(guest.RATE * SECONDS), 440, 0.1))
            clients(w, "mix", n, path, "/proc/asound/RdmixTest/pcm0p/sub0/status")
            line = [l for l in w.pumps_exited(30).splitlines() if "exiting" in l][-1]
            periods, xruns, wakeups = (int(x) for x in re.search(
                r"after (\d+) periods, (\d+) slave xruns; .*?, (\d+) wake-ups", line).groups())
            seconds = periods * 256 / guest.RATE
            got[fill] = (wakeups / seconds, periods / seconds, xruns)
        (on, per, x1), (off, _, x2) = got["true"], got["false"]
        print(f"| {buffer or 'default'} | {n} | {on:.0f} | {off:.0f} | {per:.0f} | {x1} and {x2} |", flush=True)


def capture_wakeups():
    """The capture pump's own wake-ups per second, waiting for its most eager reader and
    reading every period: N arecord clients on the copy-only test driver's capture side,
    period 256 at rdmix's default buffer, with arecord's default buffer (500 ms, woken every
    125 ms) and beside them one of 20 ms (`--buffer-time 20000`, woken every 5 ms). Every
    recording must be an exact run of the driver's counter."""
    guest.load_testcard()
    print()
    print("| recorders | pump wake-ups/s, most eager reader | pump wake-ups/s, every period | periods/s | slave xruns |")
    print("|---|---|---|---|---|")
    for n, small in [(1, False), (4, False), (16, False), (2, True)]:
        got = {}
        for fill in ("true", "false"):
            w = guest.World(f"cap{fill}{n}{small}", f'pcm.mix {{ type rdmix; ipc_key {0x5F10 + n * 4 + small * 2 + (fill == "true")}; '
                            f'slave {{ pcm "hw:RdmixTest"; period_size 256; fill_ahead {fill} }} }}\n')
            argv = ["arecord", "-q", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", str(int(SECONDS)), "-t", "raw"]
            procs = [w.start(argv + [w.path(f"r{i}.raw")]) for i in range(n - small)]
            if small:
                procs.append(w.start(argv[:2] + ["--buffer-time=20000"] + argv[2:] + [w.path("small.raw")]))
            for p in procs:
                guest.ok(w.finish(p, SECONDS * 4 + 30), "arecord")
            bad = []
            for name in [f"r{i}" for i in range(n - small)] + (["small"] if small else []):
                try:
                    guest.counter_run(open(w.path(f"{name}.raw"), "rb").read(), name)
                except guest.Fail as e:
                    bad.append(str(e))
            log = w.pumps_exited(30)
            for b in bad:
                print(f"fill_ahead {fill}, {n} recorders: NOT EXACT: {b}", flush=True)
            if bad:
                print(log[-2000:], flush=True)
            line = [l for l in log.splitlines() if "exiting" in l][-1]
            periods, xruns, wakeups = (int(x) for x in re.search(
                r"after (\d+) periods, (\d+) slave xruns; .*?, (\d+) wake-ups", line).groups())
            seconds = periods * 256 / guest.RATE
            got[fill] = (wakeups / seconds, periods / seconds, xruns)
        (on, per, x1), (off, _, x2) = got["true"], got["false"]
        what = f"{n - 1} + one of 20 ms" if small else str(n)
        print(f"| {what} | {on:.0f} | {off:.0f} | {per:.0f} | {x1} and {x2} |", flush=True)


def change_latency(runs=int(os.environ.get("RDMIX_BENCH_LATENCY_RUNS", "8"))):
    """Issue 21's goal 3: how soon a 10 ms client is heard after its first write while a
    500 ms one plays, and how soon the 500 ms one's sound ends after its drop, on the test
    driver from its read-back (guest.py's a_change_is_heard_..., `runs` times)."""
    heard, ended, notes, failed = [], [], set(), []
    for _ in range(runs):
        stalls = guest.driver_stalls()
        try:
            note = guest.a_change_is_heard_within_the_shortest_latency_and_a_period()
        except guest.Fail as e:
            failed.append(f"{e} [{guest.driver_stalls() - stalls} guest stalls past a buffer]")
            continue
        heard.append(int(re.search(r"heard (\d+) frames", note).group(1)))
        ended.append(int(re.search(r"ended (\d+) frames", note).group(1)))
        notes.add(re.search(r"goal (\d+)", note).group(1))
    print()
    print(f"| {runs} runs | min | median | max | goal |")
    print("|---|---|---|---|---|")
    for what, v in (("10 ms client heard after its first write", heard), ("dropped 500 ms client ended after", ended)):
        v = sorted(v)
        ms = [f"{x} ({x * 1000 / guest.RATE:.1f} ms)" for x in (v[0], v[len(v) // 2], v[-1])]
        print(f"| {what} | {' | '.join(ms)} | {'/'.join(sorted(notes))} frames |", flush=True)
    for f in failed:
        print(f"failed run: {f}", flush=True)


def soak(seconds, extra=()):
    """scripts/bench/soak.py on the copy-only test driver: 16 clients joining and leaving
    at random for `seconds` (`extra`: more of its options, e.g. --no-fill-ahead)."""
    guest.load_testcard()
    p = subprocess.run([sys.executable, os.path.join(guest.REPO, "scripts", "bench", "soak.py"),
                        "--slave", "hw:RdmixTest", "--seconds", str(seconds), "--build-dir", guest.REL, *extra],
                       capture_output=True, text=True, timeout=seconds + 300)
    print(p.stdout + p.stderr, flush=True)
    return p.returncode


if __name__ == "__main__":
    if sys.argv[1:2] == ["soak"]:
        sys.exit(soak(int(sys.argv[2]) if len(sys.argv) > 2 else 600, sys.argv[3:]))
    if sys.argv[1:2] == ["capture"]:
        sys.exit(capture_wakeups())
    if sys.argv[1:2] == ["latency"]:
        guest.load_testcard()
        sys.exit(change_latency())
    main()
