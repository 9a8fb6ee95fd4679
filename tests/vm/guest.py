#!/usr/bin/env python3
"""rdmix on real kernel drivers. Runs inside the VM (tests/vm/vm.sh), as root, on the host's
root: real alsa-lib, real aplay/arecord/sox, the release plugin from target/release, and the
guest kernel's own sound drivers (snd-dummy, snd-aloop) beside rdmix's copy-only test driver
(tests/vm/kmod). Every wait has a deadline; nothing sleeps for a fixed time to let things
happen. Prints one line per test and closes with "N passed, M failed".

    python3 tests/vm/guest.py [NAME...]     # all tests, or those whose name contains NAME
"""
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import wave

REPO = os.getcwd()
REL = os.path.join(REPO, "target", "release")
MODULES = os.environ.get("RDMIX_VM_MODULES", "")
KVER = os.environ.get("RDMIX_VM_KVER", "")
KMOD = os.environ.get("RDMIX_VM_KMOD", "")
RESULTS = os.environ.get("RDMIX_VM_RESULTS", "/tmp")
DBG = "/sys/kernel/debug/snd-rdmixtest"
RATE = 48000


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def wait_for(what, cond, deadline_s):
    """Polls `cond` until it returns a true value or `deadline_s` passes."""
    end = time.monotonic() + deadline_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------- drivers


def modprobe(name, *opts):
    subprocess.run(["modprobe", "-d", MODULES, "-S", KVER, name, *opts], check=True)


def unload(name):
    subprocess.run(["modprobe", "-d", MODULES, "-S", KVER, "-r", name], capture_output=True)


def card_index(name):
    with open("/proc/asound/cards") as f:
        for line in f:
            m = re.match(r"\s*(\d+) \[(\S+)\s*\]", line)
            if m and m.group(2) == name:
                return int(m.group(1))
    return None


def load_testcard(*opts):
    if not os.path.exists("/proc/asound/cards") or card_index("RdmixTest") is None:
        modprobe("snd-pcm")
        subprocess.run(["insmod", KMOD, *opts], check=True)
    wait_for("the test card", lambda: card_index("RdmixTest") is not None, 5)
    ctl("reset")


def ctl(cmd):
    with open(f"{DBG}/ctl", "w") as f:
        f.write(cmd + "\n")


def status():
    with open(f"{DBG}/status") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def tape():
    with open(f"{DBG}/played", "rb") as f:
        return f.read()


# ---------------------------------------------------------------- signals


def write_wav(path, frames, rate=RATE, channels=2, width=2):
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)


def counter_frames(n, start=1):
    """Frame k: k+start on the left, its complement on the right: exact and never silent."""
    out = bytearray(4 * n)
    for k in range(n):
        v = (k + start) & 0xFFFF
        struct.pack_into("<HH", out, 4 * k, v, v ^ 0xFFFF)
    return bytes(out)


def tone_frames(n, freq, amp, rate=RATE):
    out = bytearray(4 * n)
    w = 2 * math.pi * freq / rate
    for k in range(n):
        v = int(round(amp * 32767 * math.sin(w * k)))
        struct.pack_into("<hh", out, 4 * k, v, v)
    return bytes(out)


def left(pcm):
    return struct.unpack(f"<{len(pcm) // 2}h", pcm)[0::2]


def level(samples, freq, rate=RATE):
    """The amplitude (full scale 1.0) of `freq` in `samples`, by projection."""
    w = 2 * math.pi * freq / rate
    c = s = 0.0
    for k, x in enumerate(samples):
        c += x * math.cos(w * k)
        s += x * math.sin(w * k)
    return 2 * math.hypot(c, s) / len(samples) / 32767


def counter_run(pcm, name):
    """Checks that a capture is a bit-exact run of the test driver's counter: left k, right
    ~k, k rising by one each frame. Returns the number of frames checked."""
    n = len(pcm) // 4
    check(n > 0, f"{name}: recorded nothing")
    frames = struct.unpack(f"<{2 * n}H", pcm[: 4 * n])
    # A recording starts with what the device captured after its start; skip nothing.
    first = frames[0]
    for k in range(n):
        l, r = frames[2 * k], frames[2 * k + 1]
        if l != (first + k) & 0xFFFF or r != l ^ 0xFFFF:
            raise Fail(f"{name}: frame {k} of {n} is ({l}, {r}), expected ({(first + k) & 0xFFFF}, {((first + k) & 0xFFFF) ^ 0xFFFF})")
    return n


# ---------------------------------------------------------------- rdmix worlds


class World:
    """A private HOME with an .asoundrc naming the release plugin, and a pump log."""

    def __init__(self, name, rc):
        self.dir = tempfile.mkdtemp(prefix=f"rdmix-{name}-")
        self.log = os.path.join(self.dir, "pump.log")
        with open(os.path.join(self.dir, ".asoundrc"), "w") as f:
            f.write(f'pcm_type.rdmix {{ lib "{REL}/libasound_module_pcm_rdmix.so" }}\n')
            f.write(rc.replace("{dir}", self.dir))
        self.env = dict(os.environ, HOME=self.dir, RDMIX_PUMP_LOG=self.log, XDG_RUNTIME_DIR=self.dir)
        self.procs = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, argv):
        p = subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.argv = argv
        self.procs.append(p)
        return p

    def run(self, argv, timeout):
        p = self.start(argv)
        return self.finish(p, timeout)

    def finish(self, p, timeout):
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise Fail(f"{' '.join(p.argv)} did not finish within {timeout} s: {err.decode(errors='replace')[-400:]}")
        p.out, p.err = out.decode(errors="replace"), err.decode(errors="replace")
        return p

    def pump_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def pumps_exited(self, deadline_s=10):
        """Waits until every pump this world started has logged its exit; returns the log."""

        def done():
            log = self.pump_log()
            pids = set(re.findall(r"rdmix-pump\[(\d+)\]", log))
            gone = set(re.findall(r"rdmix-pump\[(\d+)\]: exiting", log))
            return log if pids and pids <= gone else None

        return wait_for("the pumps to exit", done, deadline_s)

    def slave_xruns(self):
        return sum(int(x) for x in re.findall(r"(\d+) slave xruns", self.pump_log()))

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def ok(p, what):
    check(p.returncode == 0, f"{what} failed ({p.returncode}): {p.err.strip()[-600:]}")


def rdmix_rc(slave, key=0x5D00, extra=""):
    return f'pcm.mix {{ type rdmix; ipc_key {key}; slave.pcm "{slave}" {extra} }}\n'


# ---------------------------------------------------------------- tests

TESTS = []


def test(f):
    TESTS.append(f)
    return f


@test
def dmix_is_refused_on_the_copy_only_driver():
    load_testcard()
    w = World("dmix", 'pcm.d { type dmix; ipc_key 7001; slave { pcm "hw:RdmixTest" } }\n')
    write_wav(w.path("t.wav"), tone_frames(4800, 1000, 0.2))
    p = w.run(["aplay", "-q", "-D", "d", w.path("t.wav")], 20)
    check(p.returncode != 0, "dmix played on a copy-only device")
    check(
        "slave plugin does not support mmap interleaved or mmap noninterleaved access" in p.err,
        f"dmix refused with another message: {p.err.strip()}",
    )
    return "alsa-lib: " + p.err.strip().splitlines()[0]


@test
def one_client_reads_back_bit_exact_from_the_driver():
    load_testcard()
    w = World("exact", rdmix_rc("hw:RdmixTest", 0x5D01))
    n = RATE * 2
    data = counter_frames(n)
    write_wav(w.path("c.wav"), data)
    t0 = time.monotonic()
    ok(w.run(["aplay", "-q", "-D", "mix", w.path("c.wav")], 30), "aplay")
    took = time.monotonic() - t0
    w.pumps_exited()
    t = tape()
    at = t.find(data[:64])
    check(at >= 0, f"the counter's first frames are not in the {len(t) // 4} frames played")
    check(t[at : at + len(data)] == data, "what the driver played differs from the file")
    check(not any(t[:at]), "something other than silence came before the stream")
    check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns: {w.pump_log()[-1500:]}")
    return f"{n} frames exact, {took:.2f} s for 2.00 s of audio"


@test
def aplay_aplay_mmap_and_sox_mix_at_their_levels():
    load_testcard()
    w = World("three", rdmix_rc("hw:RdmixTest", 0x5D02))
    n = RATE * 3
    tones = [(480, 0.25, ["aplay", "-q", "-D", "mix"]), (1200, 0.2, ["aplay", "-q", "-M", "-D", "mix"]),
             (3000, 0.15, ["sox", "-q", None, "-t", "alsa", "mix"])]
    procs = []
    for i, (f, a, argv) in enumerate(tones):
        path = w.path(f"t{i}.wav")
        write_wav(path, tone_frames(n, f, a))
        argv = [path if x is None else x for x in argv]
        if argv[0] == "aplay":
            argv = argv + [path]
        procs.append(w.start(argv))
    for p in procs:
        ok(w.finish(p, 30), " ".join(p.argv[:3]))
    w.pumps_exited()
    s = left(tape())
    # The window where all three play: the middle second of the loudest stretch.
    loud = [i for i in range(0, len(s), 480) if abs(s[i]) > 0]
    check(loud, "the driver played only silence")
    mid = (loud[0] + loud[-1]) // 2
    win = s[mid - 2400 : mid + 2400]
    got = [level(win, f) for f, _, _ in tones]
    for (f, a, _), g in zip(tones, got):
        check(abs(20 * math.log10(g / a)) < 0.2, f"{f} Hz at {g:.4f}, expected {a}")
    check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns: {w.pump_log()[-1500:]}")
    return "levels " + ", ".join(f"{f} Hz {g:.4f}" for (f, _, _), g in zip(tones, got))


@test
def three_recorders_each_get_an_exact_run_of_the_counter():
    load_testcard()
    w = World("rec", rdmix_rc("hw:RdmixTest", 0x5D03))
    argvs = [
        ["arecord", "-q", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "2", "-t", "raw", w.path("a.raw")],
        ["arecord", "-q", "-M", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "2", "-t", "raw", w.path("b.raw")],
        ["sox", "-q", "-t", "alsa", "mix", "-e", "signed", "-b", "16", "-c", "2", "-r", "48000", "-t", "raw", w.path("c.raw"), "trim", "0", "2"],
    ]
    procs = [w.start(a) for a in argvs]
    for p in procs:
        ok(w.finish(p, 30), p.argv[0])
    n = [counter_run(open(w.path(x), "rb").read(), x) for x in ("a.raw", "b.raw", "c.raw")]
    for k in n:
        check(k >= RATE * 2 - 1024, f"a recording holds only {k} frames")
    return f"frames {n}"


@test
def full_duplex_on_one_definition():
    load_testcard()
    w = World("duplex", rdmix_rc("hw:RdmixTest", 0x5D04))
    data = counter_frames(RATE * 2, start=7)
    write_wav(w.path("c.wav"), data)
    rec = w.start(["arecord", "-q", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "2", "-t", "raw", w.path("r.raw")])
    play = w.start(["aplay", "-q", "-D", "mix", w.path("c.wav")])
    ok(w.finish(play, 30), "aplay")
    ok(w.finish(rec, 30), "arecord")
    n = counter_run(open(w.path("r.raw"), "rb").read(), "arecord")
    t = tape()
    at = t.find(data[:64])
    check(at >= 0 and t[at : at + len(data)] == data, "playback beside capture is not exact")
    return f"played exact, recorded {n} frames exact"


# ---------------------------------------------------------------- runner


def main(argv):
    os.makedirs("/tmp", exist_ok=True)
    chosen = [t for t in TESTS if not argv or any(a in t.__name__ for a in argv)]
    passed = failed = 0
    for t in chosen:
        t0 = time.monotonic()
        try:
            note = t()
            passed += 1
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.1f} s){': ' + note if note else ''}", flush=True)
        except Fail as e:
            failed += 1
            print(f"FAIL {t.__name__} ({time.monotonic() - t0:.1f} s): {e}", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}: {traceback.format_exc()}", flush=True)
        finally:
            subprocess.run(["pkill", "-x", "aplay"], capture_output=True)
            subprocess.run(["pkill", "-x", "arecord"], capture_output=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
