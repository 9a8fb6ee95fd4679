#!/usr/bin/env python3
"""Whole-process cost of rdmix: N concurrent aplay clients, 48 kHz stereo S16, each playing
SECONDS of audio through rdmix into the paced copy-only test device. Reports the CPU time of
every process involved (the aplay clients and the pump) per second of audio.

Usage: scripts/bench/clients.py [--seconds 20] [--clients 1,4,16] [--rates 48000]
                                [--capture] [--build-dir target/release]
--rates cycles the clients through those rates (e.g. 44100,48000,22050,96000); the
device runs at 48 kHz, so the others are resampled in the pump.
--capture runs N arecord clients instead, each recording SECONDS from the test device's
capture side through rdmix's capture pump (to /dev/null).
--no-fill-ahead sets slave.fill_ahead false: the pump wakes at every device period.
The last column is the pump's own wake-ups per second of wall time, from its exit line.
"""
import argparse, os, resource, struct, subprocess, sys, tempfile, time

def wav(path, seconds, rate=48000):
    frames = rate * seconds
    data = (struct.pack("<hh", 1000, -1000) * 50) * (frames // 50)
    hdr = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16) + b"data" + struct.pack("<I", len(data))
    with open(path, "wb") as f:
        f.write(hdr + data)

def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime

def pump_pids(key):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"rdmix-pump") and str(key).encode() in cmd:
            out.append(int(p))
    return out

def run(n, seconds, build, key, rates, capture=False, fill=True):
    d = tempfile.mkdtemp(prefix="rdmix-bench-")
    with open(os.path.join(d, ".asoundrc"), "w") as f:
        f.write(f'''pcm_type.rdmix {{ lib "{build}/libasound_module_pcm_rdmix.so" }}
pcm_type.rdmixfake {{ lib "{build}/libasound_module_pcm_rdmixfake.so" }}
pcm.card {{ type rdmixfake; file "/dev/null" }}
pcm.!default {{ type rdmix; ipc_key {key}; slave {{ pcm "card"; fill_ahead {"true" if fill else "false"} }} }}
''')
    for r in set(rates):
        wav(os.path.join(d, f"s{r}.wav"), seconds, r)
    log = os.path.join(d, "pump.log")
    env = dict(os.environ, HOME=d, RDMIX_PUMP_LOG=log)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    def client(i):
        rate = rates[i % len(rates)]
        if capture:
            return ["arecord", "-q", "-f", "S16_LE", "-c", "2", "-r", str(rate), "-d", str(seconds), "/dev/null"]
        return ["aplay", "-q", f"s{rate}.wav"]
    procs = [subprocess.Popen(client(i), cwd=d, env=env) for i in range(n)]
    pump_cpu = 0.0
    pids = []
    while any(p.poll() is None for p in procs):
        pids = pids or pump_pids(key)
        for pid in pids:
            try:
                pump_cpu = proc_cpu(pid)
            except OSError:
                pass
        time.sleep(0.05)
    wall = time.monotonic() - t0
    for pid in pids:
        try:
            pump_cpu = proc_cpu(pid)
        except OSError:
            pass
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    clients_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    audio = n * seconds
    wakeups = None
    deadline = time.monotonic() + 30
    while wakeups is None and time.monotonic() < deadline:  # the pump lingers, then exits
        try:
            for line in open(log):
                if " wake-ups" in line:
                    wakeups = int(line.split(" wake-ups")[0].rsplit(" ", 1)[1])
        except OSError:
            pass
        if wakeups is None:
            time.sleep(0.1)
    return dict(clients=n, wall=wall, clients_cpu=clients_cpu, pump_cpu=pump_cpu, wakeups=wakeups,
                per_audio_s=(clients_cpu + pump_cpu) / audio,
                per_stream=(clients_cpu + pump_cpu) / seconds / n)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--rates", default="48000")
    ap.add_argument("--capture", action="store_true")
    ap.add_argument("--no-fill-ahead", action="store_true")
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "target", "release"))
    a = ap.parse_args()
    build = os.path.abspath(a.build_dir)
    print(f"| clients | wall s | clients CPU s | pump CPU s | CPU s per audio s | % of a core per stream | pump wake-ups/s |")
    print(f"|---|---|---|---|---|---|---|")
    for i, n in enumerate(int(x) for x in a.clients.split(",")):
        rates = [int(x) for x in a.rates.split(",")]
        r = run(n, a.seconds, build, 0x6000_0000 + os.getpid() % 0x10000 * 16 + i, rates, a.capture, not a.no_fill_ahead)
        wk = "?" if r["wakeups"] is None else f"{r['wakeups'] / r['wall']:.0f}"
        print(f"| {n} | {r['wall']:.1f} | {r['clients_cpu']:.3f} | {r['pump_cpu']:.3f} | {r['per_audio_s']:.5f} | {100*r['per_stream']:.3f}% | {wk} |", flush=True)

if __name__ == "__main__":
    main()
