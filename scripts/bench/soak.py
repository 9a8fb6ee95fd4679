#!/usr/bin/env python3
"""A soak of rdmix at its defaults: for SECONDS, 16 aplay clients join and leave at random,
with their default (500 ms) buffers, at 48 and 44.1 kHz (the second resampled in the
pump). Some play to their end and drain; some are stopped with SIGTERM (aplay drops its
stream) or SIGKILL (the pump finds the lane's peer gone) part way. Every start and stop
moves the pump's rewinds. At the end it prints the clients started, stopped and failed,
and the pump's slave xruns, wake-ups and CPU from its exit line. The target is no slave
xrun (issue 21, goal 5). A benchmark, not a test: the random pacing is the workload.

Usage: scripts/bench/soak.py [--seconds 600] [--clients 16] [--slave fake|PCM]
                             [--build-dir target/release] [--seed N] [--no-fill-ahead]
--no-fill-ahead sets slave.fill_ahead false (a 4-period buffer, a wake-up per period, no
rewinds): the same soak as before issue 21, for comparison.
--slave fake (the default) is rdmix's paced copy-only test device, on the host; in the VM,
tests/vm/bench.py runs it with --slave hw:RdmixTest, the kernel test driver.
"""
import argparse, os, random, re, signal, struct, subprocess, sys, tempfile, time


def wav(path, seconds, rate, level):
    frames = int(rate * seconds)
    data = struct.pack("<hh", level, -level) * frames
    hdr = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
           + struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16) + b"data" + struct.pack("<I", len(data)))
    with open(path, "wb") as f:
        f.write(hdr + data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--slave", default="fake")
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--no-fill-ahead", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "release"))
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    rng = random.Random(a.seed)
    d = tempfile.mkdtemp(prefix="rdmix-soak-")
    with open(os.path.join(d, ".asoundrc"), "w") as f:
        f.write(f'pcm_type.rdmix {{ lib "{build}/libasound_module_pcm_rdmix.so" }}\n')
        slave = a.slave
        if slave == "fake":
            f.write(f'pcm_type.rdmixfake {{ lib "{build}/libasound_module_pcm_rdmixfake.so" }}\n'
                    'pcm.card { type rdmixfake; file "/dev/null" }\n')
            slave = "card"
        fill = "false" if a.no_fill_ahead else "true"
        f.write(f'pcm.!default {{ type rdmix; ipc_key 24601; slave {{ pcm "{slave}"; fill_ahead {fill} }} }}\n')
    files = []
    for i, (seconds, rate) in enumerate([(1, 48000), (3, 48000), (6, 48000), (2, 44100), (5, 44100)]):
        path = os.path.join(d, f"t{i}.wav")
        wav(path, seconds, rate, 100 + i)
        files.append(path)
    log = os.path.join(d, "pump.log")
    env = dict(os.environ, HOME=d, RDMIX_PUMP_LOG=log)
    # One client holds the pump for the whole run, so that it never exits between clients.
    holder = subprocess.Popen(["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-c", "2", "-r", "48000"],
                              stdin=subprocess.PIPE, env=env, stderr=subprocess.PIPE)
    running, done = [], {"started": 0, "drained": 0, "terminated": 0, "killed": 0, "failed": 0}
    failures = []
    deadline = time.monotonic() + a.seconds

    def reap():
        for p in running[:]:
            rc = p.poll()
            if rc is None:
                continue
            running.remove(p)
            if p.stopped:
                continue
            if rc == 0:
                done["drained"] += 1
            else:
                done["failed"] += 1
                failures.append(p.stderr.read().decode(errors="replace")[-300:])

    while time.monotonic() < deadline:
        reap()
        while len(running) < a.clients:
            p = subprocess.Popen(["aplay", "-q", rng.choice(files)], env=env, stderr=subprocess.PIPE)
            p.stopped = False
            running.append(p)
            done["started"] += 1
        if rng.random() < 0.3 and running:
            p = rng.choice(running)
            how = rng.choice([signal.SIGTERM, signal.SIGKILL])
            p.stopped = True
            p.send_signal(how)
            done["terminated" if how == signal.SIGTERM else "killed"] += 1
        time.sleep(rng.uniform(0.05, 0.6))
    for p in running:
        p.wait(timeout=60)
    reap()
    holder.stdin.close()
    holder.wait(timeout=30)
    end = time.monotonic() + 30
    exit_line = None
    while time.monotonic() < end and exit_line is None:
        with open(log) as f:
            exit_line = next((l for l in f if "exiting" in l), None)
        if exit_line is None:
            time.sleep(0.2)
    print(f"soak: {a.seconds} s, {a.clients} clients at a time on {a.slave}, fill_ahead {fill}: {done}")
    for f in failures[:5]:
        print("  failed client:", f.strip())
    if exit_line is None:
        print("soak: the pump did not exit")
        return 1
    m = re.search(r"after (\d+) periods, (\d+) slave xruns; cpu (\d+) us, (\d+) wake-ups", exit_line)
    periods, xruns, cpu_us, wakeups = (int(x) for x in m.groups())
    print(f"soak: pump: {periods} periods, {xruns} slave xruns, {cpu_us / 1e6 / a.seconds * 100:.2f}% of a core, "
          f"{wakeups / a.seconds:.0f} wake-ups/s")
    lines = [l.strip() for l in open(log) if "slave xrun" in l and "recovered" in l]
    for l in lines[:5]:
        print("  ", l)
    return 0 if xruns == 0 and done["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
