#!/usr/bin/env python3
"""rdmix on real kernel drivers. Runs inside the VM (tests/vm/vm.sh), as root, on the host's
root: real alsa-lib, real aplay/arecord/sox, the release plugin from target/release, and the
guest kernel's own sound drivers (snd-dummy, snd-aloop) beside rdmix's copy-only test driver
(tests/vm/kmod). Every wait has a deadline; nothing sleeps for a fixed time to let things
happen. Prints one line per test and closes with "N passed, M failed".

    python3 tests/vm/guest.py [NAME...]     # all tests, or those whose name contains NAME
"""
import json
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
    if not os.path.exists("/proc/asound/cards"):
        return None
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
    # One read: the driver renders the text anew on each read, so a second read at an
    # offset would land in a newer, longer text.
    fd = os.open(f"{DBG}/status", os.O_RDONLY)
    try:
        text = os.read(fd, 65536).decode()
    finally:
        os.close(fd)
    return {k: int(v) for k, v in (line.split() for line in text.splitlines() if line.strip())}


def driver_stalls():
    """Updates of the test driver that found the guest had stood still past a buffer (0
    while the driver is not loaded)."""
    try:
        return status().get("stalls", 0)
    except OSError:
        return 0


def tape():
    with open(f"{DBG}/played", "rb") as f:
        return f.read()


def tape_at():
    """The driver's tape length and the CLOCK_MONOTONIC ns of the update that set it: while
    the stream runs, the frame playing at time t (ns) is frames + (t - ns) * RATE / 1e9."""
    st = status()
    return st["played_frames"], st["played_ns"]


def playing_now():
    """The tape frame playing now, while a stream runs."""
    frames, ns = tape_at()
    return frames + (time.monotonic_ns() - ns) * RATE // 1_000_000_000


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


def played_together(s, freqs, what):
    """The middle frame of the stretch of `s` where every tone of `freqs` is heard, at half
    its loudest or more, in 0.1 s steps (2000 frames hold whole cycles of 480, 1200 and
    3000 Hz), and the seconds where any is. Fails naming where each was heard."""
    steps = range(2400, len(s) - 2400, 4800)
    levels = {f: [level(s[k - 1000 : k + 1000], f) for k in steps] for f in freqs}
    heard = {f: {k for k, v in zip(steps, ls) if v > max(ls, default=0) / 2 > 0} for f, ls in levels.items()}
    together = sorted(set.intersection(*heard.values()))
    check(together, f"{what}: the tones never played together: " + ", ".join(
        f"{f} Hz at {min(v) / RATE:.1f}-{max(v) / RATE:.1f} s" if v else f"{f} Hz never" for f, v in heard.items()))
    return together[len(together) // 2], len(set.union(*heard.values())) * 0.1


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


WORLDS = []  # every world made, so the runner can read a failed test's pump logs


class World:
    """A private HOME with an .asoundrc naming the release plugin, and a pump log."""

    def __init__(self, name, rc):
        self.dir = tempfile.mkdtemp(prefix=f"rdmix-{name}-")
        self.log = os.path.join(self.dir, "pump.log")
        with open(os.path.join(self.dir, ".asoundrc"), "w") as f:
            f.write(f'pcm_type.rdmix {{ lib "{REL}/libasound_module_pcm_rdmix.so" }}\n')
            f.write(f'ctl_type.rdmix {{ lib "{REL}/libasound_module_pcm_rdmix.so" }}\n')
            f.write(rc.replace("{dir}", self.dir))
        self.env = dict(os.environ, HOME=self.dir, RDMIX_PUMP_LOG=self.log, XDG_RUNTIME_DIR=self.dir)
        self.procs = []
        WORLDS.append(self)

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
        """Waits until every pump this world started has logged its exit and is gone (it
        closes the device after its last line); returns the log."""

        def done():
            log = self.pump_log()
            pids = set(re.findall(r"rdmix-pump\[(\d+)\]", log))
            gone = set(re.findall(r"rdmix-pump\[(\d+)\]: exiting", log))
            vanished = all(not os.path.exists(f"/proc/{pid}") for pid in pids)
            return log if pids and pids <= gone and vanished else None

        try:
            return wait_for("the pumps to exit", done, deadline_s)
        except Fail as e:
            raise Fail(f"{e}; pump log: {self.pump_log()[-1200:]}")

    def running_clients(self):
        """How many clients the world's pumps say are running (rdmix-status --json)."""
        p = subprocess.run([os.path.join(REL, "rdmix-status"), "--json"], env=self.env,
                           capture_output=True, text=True, timeout=10)
        try:
            pumps = json.loads(p.stdout).get("pumps", [])
        except ValueError:
            return 0
        return sum(1 for pump in pumps for c in pump.get("clients", []) if c.get("state") == "running")

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
    # sox first, and the aplays once it plays: a cold sox under TCG can take seconds to
    # start, and the three tones must overlap for their levels to be read together.
    for i, (f, a, argv) in reversed(list(enumerate(tones))):
        path = w.path(f"t{i}.wav")
        write_wav(path, tone_frames(n, f, a))
        argv = [path if x is None else x for x in argv]
        if argv[0] == "aplay":
            argv = argv + [path]
        procs.append(w.start(argv))
        if argv[0] == "sox":
            wait_for("sox playing", lambda: w.running_clients() >= 1, 20)
    for p in procs:
        ok(w.finish(p, 30), " ".join(p.argv[:3]))
    w.pumps_exited()
    s = left(tape())
    check(any(s), "the driver played only silence")
    mid, _ = played_together(s, [f for f, _, _ in tones], "the driver's tape")
    win = s[mid - 2400 : mid + 2400]
    got = [level(win, f) for f, _, _ in tones]
    for (f, a, _), g in zip(tones, got):
        check(abs(20 * math.log10(max(g, 1e-9) / a)) < 0.2, f"{f} Hz at {g:.4f}, expected {a}")
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



def play_record(w, seconds, start=1):
    """Starts aplay of a counter file and arecord of `seconds`, both through `mix`."""
    data = counter_frames(int(RATE * seconds), start=start)
    write_wav(w.path("c.wav"), data)
    rec = w.start(["arecord", "-q", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000",
                   "-d", str(seconds), "-t", "raw", w.path("r.raw")])
    play = w.start(["aplay", "-q", "-D", "mix", w.path("c.wav")])
    return data, play, rec


def playing(frames):
    wait_for(f"{frames} frames played", lambda: status()["played_frames"] >= frames, 10)


def exact_in_tape(data, what):
    t = tape()
    at = t.find(data[:64])
    check(at >= 0, f"{what}: the stream's first frames are not in what the driver played")
    if t[at : at + len(data)] != data:
        bad = next(i for i in range(0, len(data), 4) if t[at + i : at + i + 4] != data[i : i + 4])
        raise Fail(f"{what}: what the driver played differs from the file at frame {bad // 4} of {len(data) // 4}")
    return at // 4


def rdmix_lines(err):
    return [l for l in err.splitlines() if l.startswith("rdmix:") or "rdmix:" in l]


# A mixer, as alsamixer holds one: opens ctl "mix", subscribes, and writes each element
# event ("MASK NAME") to stdout until its stdin closes.
MONITOR = r'''
import ctypes, select, sys
a = ctypes.CDLL("libasound.so.2")
a.snd_ctl_event_elem_get_name.restype = ctypes.c_char_p
h, ev = ctypes.c_void_p(), ctypes.c_void_p()
r = a.snd_ctl_open(ctypes.byref(h), b"mix", 0)
if r < 0:
    print("open failed", r, flush=True)
    sys.exit(1)
a.snd_ctl_subscribe_events(h, 1)
a.snd_ctl_nonblock(h, 1)
a.snd_ctl_event_malloc(ctypes.byref(ev))
class P(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]
fds = (P * 4)()
n = a.snd_ctl_poll_descriptors(h, fds, 4)
print("open", flush=True)
while True:
    ready, _, _ = select.select([sys.stdin] + [fds[i].fd for i in range(n)], [], [])
    if sys.stdin in ready:
        break
    while a.snd_ctl_read(h, ev) > 0:
        print(a.snd_ctl_event_elem_get_mask(ev) & 0xffffffff, a.snd_ctl_event_elem_get_name(ev).decode(), flush=True)
'''


@test
def a_watched_pump_frees_the_card_between_programs():
    """A mixer keeps its pump (for its Master and its events), but not the card: a linger
    after the last program the pump closes the kernel device, so a program that opens the
    card directly gets it, and the next program through rdmix opens it again, exact."""
    load_testcard()
    key = 0x5D30
    w = World("watched", rdmix_rc("hw:RdmixTest", key) + f'ctl.mix {{ type rdmix; ipc_key {key}; slave.pcm "hw:RdmixTest" }}\n')
    events = open(w.path("events"), "w")
    mon = subprocess.Popen([sys.executable, "-c", MONITOR], env=w.env, stdin=subprocess.PIPE,
                           stdout=events, stderr=subprocess.STDOUT)
    w.procs.append(mon)
    said = lambda: open(w.path("events")).read()
    wait_for("the mixer to open", lambda: "open" in said() and said(), 20)
    # Three runs of the 16-bit counter that never overlap, so each is found only where it played.
    first = counter_frames(RATE // 2)
    write_wav(w.path("a.wav"), first)
    p = w.start(["aplay", "-q", "-D", "mix", w.path("a.wav")])
    ok(w.finish(p, 30), "aplay through rdmix")
    exact_in_tape(first, "the first program")
    name = f"aplay {p.pid} Playback Volume"
    wait_for("the program's elements to come and go", lambda: f"4 {name}" in said() and f"4294967295 {name}" in said(), 20)
    wait_for("the watched pump to close the card", lambda: 'closing "hw:RdmixTest"' in w.pump_log(), 20)
    pumps = set(re.findall(r"rdmix-pump\[(\d+)\]", w.pump_log()))
    check(all(os.path.exists(f"/proc/{pid}") for pid in pumps), "the watched pump exited")
    direct = counter_frames(RATE // 4, start=30_000)
    write_wav(w.path("d.wav"), direct)
    ok(w.run(["aplay", "-q", "-D", "hw:RdmixTest", w.path("d.wav")], 30), "aplay on the card itself, beside the watched pump")
    exact_in_tape(direct, "the direct program")
    second = counter_frames(RATE // 4, start=45_000)
    write_wav(w.path("b.wav"), second)
    ok(w.run(["aplay", "-q", "-D", "mix", w.path("b.wav")], 30), "aplay through rdmix again")
    exact_in_tape(second, "the next program through the same pump")
    check(set(re.findall(r"rdmix-pump\[(\d+)\]", w.pump_log())) == pumps, "another pump served the next program")
    mon.stdin.close()
    mon.wait(10)
    w.pumps_exited()
    check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns")
    return "the watched pump closed the card after its program; a direct program and the next through rdmix exact"


@test
def suspend_mid_stream_resumes_both_directions_with_no_error():
    load_testcard()
    w = World("suspend", rdmix_rc("hw:RdmixTest", 0x5D10))
    data, play, rec = play_record(w, 3)
    playing(RATE // 2)
    t0 = time.monotonic()
    ctl("suspend")
    held = 0.3
    while time.monotonic() - t0 < held:  # the suspend itself: the fault lasts this long
        time.sleep(0.01)
    ctl("resume")
    ok(w.finish(play, 30), "aplay")
    ok(w.finish(rec, 30), "arecord")
    check(not play.err.strip() and not rec.err.strip(), f"a client saw an error: {play.err}{rec.err}")
    log = w.pumps_exited()
    try:
        exact_in_tape(data, "playback across the suspend")
        n = counter_run(open(w.path("r.raw"), "rb").read(), "capture across the suspend")
    except Fail as e:
        # The suspend costs each pump one recovery; any more is a device xrun of its own.
        if w.slave_xruns() > 2:
            raise Fail(f"{e}; {w.slave_xruns()} slave xruns, beyond the suspend's 2") from e
        raise
    check("slave xrun" in log, "the pumps never saw the suspend")
    return f"played exact, recorded {n} frames exact; {w.slave_xruns()} recoveries"


@test
def a_forced_xrun_is_recovered_silently():
    load_testcard()
    w = World("xrun", rdmix_rc("hw:RdmixTest", 0x5D11))
    data, play, rec = play_record(w, 2)
    playing(RATE // 2)
    ctl("xrun")
    ok(w.finish(play, 30), "aplay")
    ok(w.finish(rec, 30), "arecord")
    check(not play.err.strip(), f"aplay saw the slave's xrun: {play.err}")
    w.pumps_exited()
    check(w.slave_xruns() >= 1, "no slave xrun was logged")
    return f"{w.slave_xruns()} slave xruns recovered"


@test
def a_disconnect_ends_every_client_with_one_line_and_reconnects():
    load_testcard()
    w = World("unplug", rdmix_rc("hw:RdmixTest", 0x5D12))
    data, play, rec = play_record(w, 6)
    playing(RATE // 2)
    t0 = time.monotonic()
    ctl("disconnect")
    ends = []
    for p, name in ((play, "aplay"), (rec, "arecord")):
        w.finish(p, 10)
        ends.append(time.monotonic() - t0)
        check(p.returncode != 0, f"{name} went on after the unplug")
        lines = rdmix_lines(p.err)
        check(len(lines) >= 1, f"{name} gave no rdmix line: {p.err.strip()}")
    check(max(ends) <= 1.0, f"the clients ended {ends[0]:.2f} s and {ends[1]:.2f} s after the unplug")
    w.pumps_exited(5)
    again = w.run(["aplay", "-q", "-D", "mix", w.path("c.wav")], 10)
    check(again.returncode != 0, "a new open played on an unplugged card")
    gone = rdmix_lines(again.err)
    check(gone and re.search(r"No such|gone|disconnected", gone[0]), f"a new open said: {again.err.strip()}")
    ctl("connect")
    wait_for("the card back", lambda: card_index("RdmixTest") is not None, 5)
    ctl("reset")
    short = counter_frames(RATE // 2)
    write_wav(w.path("s.wav"), short)
    ok(w.run(["aplay", "-q", "-D", "mix", w.path("s.wav")], 20), "aplay after the card came back")
    exact_in_tape(short, "after the card came back")
    return f"clients ended in {ends[0]:.2f} s and {ends[1]:.2f} s ({rdmix_lines(play.err)[0]}); new open: {gone[0]}"


def exact_under(fault, undo, key, seconds, what):
    """Plays and records through rdmix while the test driver does `fault`: both directions
    exact, and no slave xrun. Returns the frames recorded."""
    load_testcard()
    ctl(fault)
    try:
        w = World(what, rdmix_rc("hw:RdmixTest", key))
        data, play, rec = play_record(w, seconds)
        ok(w.finish(play, 30), "aplay")
        ok(w.finish(rec, 30), "arecord")
        try:
            exact_in_tape(data, f"{what} playback")
        except Fail as e:
            raise Fail(f"{e}; aplay said: {play.err.strip()[-300:]!r}; pumps: {w.pump_log()[-600:]!r}")
        n = counter_run(open(w.path("r.raw"), "rb").read(), f"{what} capture")
        w.pumps_exited()
        check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns: {w.pump_log()[-800:]}")
    finally:
        ctl(undo)
    return n


@test
def a_batch_pointer_plays_and_records_exact_with_no_xrun():
    n = exact_under("batch 1", "batch 0", 0x5D13, 3, "batch")
    return f"played exact, recorded {n} frames exact, 0 slave xruns"


@test
def a_slow_copy_still_keeps_up():
    n = exact_under("slow 1500", "slow 0", 0x5D14, 2, "slow-copy")
    return f"1.5 ms per copy: played exact, recorded {n} frames exact"


@test
def an_eio_from_the_driver_ends_clients_with_a_clear_line():
    load_testcard()
    w = World("eio", rdmix_rc("hw:RdmixTest", 0x5D15))
    data, play, rec = play_record(w, 6)
    playing(RATE // 2)
    t0 = time.monotonic()
    ctl("eio -1")
    try:
        ends = []
        for p, name in ((play, "aplay"), (rec, "arecord")):
            w.finish(p, 10)
            ends.append(time.monotonic() - t0)
            check(p.returncode != 0, f"{name} went on after the device failed")
            lines = rdmix_lines(p.err)
            check(lines and "Input/output error" in lines[0], f"{name} said: {p.err.strip()}")
        log = w.pumps_exited(5)
        check("Input/output error" in log, f"the pump log does not name the error: {log[-600:]}")
    finally:
        ctl("eio 0")
    check(max(ends) <= 2.0, f"the clients ended {ends} s after the failure")
    return f"ended in {max(ends):.2f} s: {rdmix_lines(play.err)[0]}"


def dummy():
    if card_index("Dummy") is None:
        modprobe("snd-dummy", "pcm_devs=4", "hrtimer=1")
        wait_for("snd-dummy", lambda: card_index("Dummy") is not None, 5)


def three_players(w, seconds):
    n = int(RATE * seconds)
    write_wav(w.path("t.wav"), tone_frames(n, 1000, 0.2))
    t0 = time.monotonic()
    procs = [w.start(["aplay", "-q", "-D", "mix", w.path("t.wav")]),
             w.start(["aplay", "-q", "-M", "-D", "mix", w.path("t.wav")]),
             w.start(["sox", "-q", w.path("t.wav"), "-t", "alsa", "mix"])]
    for p in procs:
        ok(w.finish(p, 30), " ".join(p.argv[:3]))
    return time.monotonic() - t0


@test
def snd_dummy_copy_only_devices_refuse_dmix_and_take_rdmix():
    dummy()
    notes = []
    for dev in (2, 3):
        w = World(f"dummy{dev}", f'pcm.d {{ type dmix; ipc_key {7010 + dev}; slave {{ pcm "hw:Dummy,{dev}" }} }}\n'
                  + rdmix_rc(f"hw:Dummy,{dev}", 0x5D20 + dev))
        write_wav(w.path("s.wav"), tone_frames(4800, 1000, 0.2))
        p = w.run(["aplay", "-q", "-D", "d", w.path("s.wav")], 20)
        check(p.returncode != 0 and "does not support mmap" in p.err, f"dmix on hw:Dummy,{dev}: {p.err.strip()}")
        took = three_players(w, 2)
        rec = w.run(["arecord", "-q", "-D", "mix", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "1",
                     "-t", "raw", w.path("r.raw")], 20)
        ok(rec, f"arecord on hw:Dummy,{dev}")
        got = os.path.getsize(w.path("r.raw")) // 4
        check(got == RATE, f"arecord on hw:Dummy,{dev} got {got} frames")
        w.pumps_exited()
        check(w.slave_xruns() == 0, f"hw:Dummy,{dev}: {w.slave_xruns()} slave xruns: {w.pump_log()[-1000:]}")
        # A pump too slow for the device shows as slave xruns (checked above: snd-dummy keeps
        # real time by its own timer). This catches a hang, or a drain that waits out a
        # timeout; it allows TCG's start-up of three programs (about 1 s) and the drain of a
        # third of a second, on a 2-core host that may be busy (3.2-3.5 s seen).
        check(took < 2 + 2.5, f"hw:Dummy,{dev}: 2 s of audio took {took:.2f} s")
        notes.append(f"hw:Dummy,{dev} {took:.2f} s")
    return "three players, 0 slave xruns: " + ", ".join(notes)


def aloop():
    if card_index("Loopback") is None:
        modprobe("snd-aloop", "pcm_substreams=4")
        wait_for("snd-aloop", lambda: card_index("Loopback") is not None, 5)


def find_run(pcm, data, what):
    """The recording holds `data` whole and in order, after whatever silence led it."""
    at = pcm.find(data[:64])
    check(at >= 0, f"{what}: the played frames are not in the recording")
    got = pcm[at : at + len(data)]
    check(len(got) == len(data), f"{what}: the recording ends {len(got) // 4} frames into the stream")
    check(got == data, f"{what}: the recording differs from what was played")
    return at // 4


def recorded_from_cable(w, into, mic, sub, what):
    """Plays a counter into the cable with a plain aplay; two recorders through rdmix on the
    other end must each get a bit-exact run of it."""
    data = counter_frames(RATE * 5, start=5)
    write_wav(w.path("long.wav"), data)
    play = w.start(["aplay", "-q", "-D", into, w.path("long.wav")])
    wait_for("the cable running", lambda: "RUNNING" in open(f"/proc/asound/Loopback/{sub}/status").read(), 5)
    recs = [w.start(["arecord", "-q", "-D", mic, "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "2", "-t", "raw",
                     w.path(f"m{i}.raw")]) for i in range(2)]
    for p in recs:
        ok(w.finish(p, 30), f"arecord {what}")
    ok(w.finish(play, 30), "plain aplay into the cable")
    got = [open(w.path(f"m{i}.raw"), "rb").read() for i in range(2)]
    for i, pcm in enumerate(got):
        counter_run(pcm, f"recorder {i} {what}")
        check(len(pcm) // 4 >= 2 * RATE - 1024, f"recorder {i} {what}: {len(pcm) // 4} frames")


@test
def snd_aloop_rdmix_plays_into_the_cable_and_records_from_it():
    aloop()
    w = World("aloop", rdmix_rc("hw:Loopback,0,0", 0x5D30) + rdmix_rc("hw:Loopback,1,1", 0x5D31).replace("pcm.mix", "pcm.mic"))
    data = counter_frames(RATE * 2, start=3)
    write_wav(w.path("c.wav"), data)
    # Playback: rdmix into the cable, a plain arecord on its other end.
    rec = w.start(["arecord", "-q", "-D", "hw:Loopback,1,0", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "4",
                   "-t", "raw", w.path("plain.raw")])
    wait_for("the cable's capture end open", lambda: "RUNNING" in open("/proc/asound/Loopback/pcm1c/sub0/status").read(), 5)
    ok(w.run(["aplay", "-q", "-D", "mix", w.path("c.wav")], 30), "aplay through rdmix")
    ok(w.finish(rec, 30), "plain arecord")
    find_run(open(w.path("plain.raw"), "rb").read(), data, "rdmix into snd-aloop")
    # Capture: a plain aplay into the cable, two recorders through rdmix on its other end,
    # each started once the cable carries the stream and done before it ends.
    recorded_from_cable(w, "hw:Loopback,0,1", "mic", "pcm0p/sub1", "through rdmix")
    return "played exact through the cable, two recorders exact from it"


@test
def dmix_and_dsnoop_over_snd_aloop_as_rdmix_slaves():
    aloop()
    rc = ('pcm.dm { type dmix; ipc_key 7100; slave { pcm "hw:Loopback,0,2"; format S16_LE; rate 48000; channels 2;'
          ' period_size 256; buffer_size 2048 } }\n'
          'pcm.ds { type dsnoop; ipc_key 7101; slave { pcm "hw:Loopback,1,3"; format S16_LE; rate 48000; channels 2;'
          ' period_size 256; buffer_size 2048 } }\n'
          + rdmix_rc("dm", 0x5D32) + rdmix_rc("ds", 0x5D33).replace("pcm.mix", "pcm.mic"))
    w = World("dmixslave", rc)
    n = RATE * 3
    write_wav(w.path("a.wav"), tone_frames(n, 480, 0.25))
    write_wav(w.path("b.wav"), tone_frames(n, 1200, 0.2))
    rec = w.start(["arecord", "-q", "-D", "hw:Loopback,1,2", "-f", "S16_LE", "-c", "2", "-r", "48000", "-d", "5",
                   "-t", "raw", w.path("out.raw")])
    wait_for("the cable's capture end open", lambda: "RUNNING" in open("/proc/asound/Loopback/pcm1c/sub2/status").read(), 5)
    # rdmix over dmix, beside a program on dmix itself.
    a = w.start(["aplay", "-q", "-D", "mix", w.path("a.wav")])
    b = w.start(["aplay", "-q", "-D", "dm", w.path("b.wav")])
    ok(w.finish(a, 30), "aplay through rdmix over dmix")
    ok(w.finish(b, 30), "aplay on dmix")
    ok(w.finish(rec, 30), "arecord")
    s = left(open(w.path("out.raw"), "rb").read())
    check(any(s), "the cable carried only silence")
    mid, _ = played_together(s, [480, 1200], "the cable")
    win = s[mid - 2400 : mid + 2400]
    la, lb = level(win, 480), level(win, 1200)
    check(abs(20 * math.log10(la / 0.25)) < 0.3 and abs(20 * math.log10(lb / 0.2)) < 0.3,
          f"levels {la:.4f} and {lb:.4f}, expected 0.25 and 0.2")
    # rdmix over dsnoop.
    recorded_from_cable(w, "hw:Loopback,0,3", "mic", "pcm0p/sub3", "over dsnoop")
    return f"over dmix beside dmix: {la:.4f} and {lb:.4f}; over dsnoop: two recorders exact"


@test
def snd_hda_intel_plays_the_mix_into_a_wav_on_the_host():
    """qemu's intel-hda and hda-output: the guest's snd-hda-intel plays, and qemu writes what
    the codec receives to a WAV on the host (the results directory)."""
    wav = os.path.join(RESULTS, "hda.wav")
    check(os.path.exists(wav), f"the VM has no HDA output file ({wav}): run it through tests/vm/run.sh")
    if card_index("Intel") is None:
        # The codec's driver must be resident before the controller probes: the kernel's own
        # request for it runs /sbin/modprobe on the host's root, which has no 6.1 modules
        # ("Cannot probe codecs, giving up").
        modprobe("snd-hda-codec-generic")
        modprobe("snd-hda-intel")
        wait_for("snd-hda-intel's card", lambda: card_index("Intel") is not None, 20)
    for control in ("Master", "PCM"):
        subprocess.run(["amixer", "-q", "-c", "Intel", "sset", control, "100%", "unmute"], capture_output=True)
    w = World("hda", rdmix_rc("hw:Intel", 0x5D40))
    n = RATE * 2
    write_wav(w.path("a.wav"), tone_frames(n, 480, 0.25))
    write_wav(w.path("b.wav"), tone_frames(n, 1200, 0.125))
    before = os.path.getsize(wav)
    a = w.start(["aplay", "-q", "-D", "mix", w.path("a.wav")])
    b = w.start(["aplay", "-q", "-D", "mix", w.path("b.wav")])
    ok(w.finish(a, 30), "aplay through rdmix into snd-hda-intel")
    ok(w.finish(b, 30), "aplay through rdmix into snd-hda-intel")
    w.pumps_exited()
    with open(wav, "rb") as f:
        f.seek(max(before, 44) // 4 * 4)
        s = left(f.read())
    check(any(abs(x) > 16 for x in s), f"the codec's output on the host holds only silence ({len(s)} frames)")
    mid, sound_s = played_together(s, [480, 1200], "the codec's output on the host")
    win = s[mid - 2400 : mid + 2400]
    la, lb = level(win, 480), level(win, 1200)
    ratio = 20 * math.log10(la / lb)
    check(abs(ratio - 6.02) < 0.3, f"480 Hz at {la:.4f} and 1200 Hz at {lb:.4f}: {ratio:.2f} dB apart, want 6.02")
    check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns: {w.pump_log()[-600:]}")
    return f"on the host: 480 Hz {la:.4f}, 1200 Hz {lb:.4f} ({ratio:.2f} dB apart), {sound_s:.1f} s of sound"


# ---------------------------------------------------------------- rewinds (issue 21's groundwork)

REWIND_DEFS = """
pcm.r_plug { type plug; slave.pcm "hw:RdmixTest" }
pcm.r_softvol { type softvol; slave.pcm "hw:Loopback,0,3"; control { name "rdmix rewind"; card Loopback } }
pcm.r_dmix { type dmix; ipc_key 7101; slave { pcm "hw:Loopback,0,1"; period_size 1024; buffer_size 8192 } }
pcm.r_null { type null }
"""


@test
def which_devices_rewind():
    """How far each driver and plugin lets a program rewind a playing stream, for issue 21
    (rdmix's pump may rewind its slave only where the slave allows it): tests/vm/rewind.py
    plays a counter, waits until 40 ms of it has played, rewinds all it may but two
    periods, and writes a marker in its place. On the copy-only test driver the rewind is
    also checked in what the driver played: the counter up to the rewind point, then
    exactly the marker."""
    load_testcard()
    dummy()
    aloop()
    w = World("rewind", REWIND_DEFS)
    names = ["hw:RdmixTest", "hw:Dummy,0", "hw:Dummy,2", "hw:Loopback,0,0",
             "r_plug", "r_softvol", "r_dmix", "r_null"]
    if card_index("Intel") is not None:
        names.append("hw:Intel")
    ctl("reset")
    p = w.run(["python3", os.path.join(REPO, "tests", "vm", "rewind.py"), *names], 60)
    ok(p, "rewind.py")
    got = {r["pcm"]: r for r in map(json.loads, p.out.splitlines())}
    notes = []
    for name in names:
        r = got.get(name)
        check(r is not None, f"rewind.py said nothing of {name}: {p.err.strip()}")
        if "error" in r:
            notes.append(f"{name}: {r['error']}")
            continue
        check(r["rewound"] <= max(r["rewindable"], 0), f"{name}: rewound {r['rewound']}, past its {r['rewindable']}")
        notes.append(f"{name} {r['rewindable']} of {r['buffer']}" if r["rewindable"] > 0 else f"{name} none")
    # The test driver: the rewind must be honoured frame for frame.
    r = got["hw:RdmixTest"]
    check("error" not in r and r["rewound"] > 0, f"hw:RdmixTest did not rewind: {r}")
    data = counter_frames(RATE)
    kept = r["written"] - r["rewound"]
    expect = data[: 4 * kept] + bytes([0x11, 0x22, 0x33, 0x44]) * r["rewound"]
    t = tape()
    at = t.find(data[:64])
    check(at >= 0 and t[at : at + len(expect)] == expect,
          f"hw:RdmixTest: what played after rewinding {r['rewound']} frames is not the counter to frame {kept}, then the marker")
    return "rewindable after 40 ms of play: " + ", ".join(notes) + "; the test driver played the rewound stream exact"


@test
def a_volume_change_is_heard_at_once_on_the_driver():
    """Issue 22 on a kernel driver: a program turned down 6 dB mid-stream (rdmix-status
    --volume) is heard at its new level within a few milliseconds of the pump's answer,
    though the slave is filled a third of a second ahead (the pump rewinds it, keeping half
    a period), ramped over less than a period, with no slave xrun; turned back up, it is
    bit-exact again."""
    load_testcard()
    w = World("volume", rdmix_rc("hw:RdmixTest", 0x5D30))
    n = RATE * 4
    write_wav(w.path("c.wav"), struct.pack("<hh", 8000, 8000) * n)
    p = w.start(["aplay", "-q", "-D", "mix", w.path("c.wav")])
    wait_for("aplay playing", lambda: w.running_clients() >= 1, 20)
    wait_for("a second played", lambda: status()["played_frames"] >= RATE, 20)
    marks = []
    for level_arg in ("-6dB", "0dB"):
        before = playing_now()
        r = subprocess.run([os.path.join(REL, "rdmix-status"), "--volume", str(p.pid), level_arg],
                           env=w.env, capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, f"rdmix-status --volume {level_arg}: {r.stderr}")
        marks.append((before, playing_now()))
        wait_for("half a second more", lambda: playing_now() >= marks[-1][1] + RATE // 2, 20)
    ok(w.finish(p, 30), "aplay")
    x = left(tape())
    low = round(8000 * 10 ** (-6 / 20))
    first = x.index(8000)
    changes = []
    at = first
    for (before, after), (was, now) in zip(marks, [(8000, low), (low, 8000)]):
        heard = next((k for k in range(at, len(x)) if x[k] != was), None)
        check(heard is not None and heard >= before, f"the change to {now} was heard at {heard}, before it was made at {before}")
        settled = next((k for k in range(heard, len(x)) if x[k] == now), None)
        check(settled is not None and settled - heard < 256, f"the change to {now} ramped from {heard} to {settled}")
        check(all(min(was, now) <= v <= max(was, now) for v in x[heard:settled]), f"the ramp to {now} overshoots")
        changes.append((heard - before, heard - after, settled - heard))
        at = settled
    end = max(k for k in range(len(x)) if x[k] == 8000) + 1
    check(all(v == 8000 for v in x[at:end]), "back at 0 dB the tone is not bit-exact")
    check(w.slave_xruns() == 0, f"{w.slave_xruns()} slave xruns: {w.pump_log()[-600:]}")
    # Without a rewind either change would wait behind what the slave holds (a third of a
    # second): 50 ms past the pump's answer proves the rewind; the figure is the note.
    for k, (since_asked, since_answer, ramp) in enumerate(changes):
        check(since_answer <= RATE // 20, f"change {k} heard {since_answer} frames after the pump answered: not rewound")
    return "; ".join(f"change {k} heard {a} frames after rdmix-status started, {b} after it returned, ramped over {c}"
                     for k, (a, b, c) in enumerate(changes))


@test
def a_change_is_heard_within_the_shortest_latency_and_a_period():
    """Issue 21's goal 3, on the copy-only test driver, from what it played: a 10 ms client
    that starts while a 500 ms one plays, with the slave filled a third of a second ahead,
    is heard within its 10 ms and a device period of its first write; when the 500 ms one
    is dropped, its sound ends within that time too. The pump rewinds the driver both
    times (tests/vm/latency.py makes the two clients and marks the moments)."""
    load_testcard()
    w = World("latency", rdmix_rc("hw:RdmixTest", 0x5D21))
    ctl("reset")
    p = w.run(["python3", os.path.join(REPO, "tests", "vm", "latency.py")], 60)
    ok(p, "latency.py")
    m = json.loads(p.out.strip().splitlines()[-1])
    sizes = re.search(r"period (\d+) / buffer (\d+) frames", w.pump_log())
    check(sizes is not None, f"the pump logged no period: {w.pump_log()}")
    period, buffer = int(sizes.group(1)), int(sizes.group(2))
    t = tape()
    x = left(t)
    first, drop, short = m["first_write"], m["drop"], m["short_buffer"]
    # The long client's snd_pcm_delay, before and after the rewinds: the frame it says
    # plays next is that far down the tape (its counter is on the right).
    right = struct.unpack(f"<{len(t) // 2}H", t)[1::2]
    errors, spans, inserted = [], [], []
    for at, delay, k, span in m["delays"]:
        want = at + delay
        v = (k + 1) & 0xFFFF
        # The counter wraps every 65536 frames: look within half of that.
        found = [i for i in range(max(want - 32000, 1), min(want + 32000, len(right)))
                 if right[i] == v and right[i - 1] == (v - 1) & 0xFFFF]
        if len(found) != 1:
            errors.append(f"{len(found)} at {[f - want for f in found[:3]]}")
            inserted.append(0)
        else:
            # A slave xrun under TCG between the sample and its frame plays what the buffer
            # held past the pump's last write before it is caught: the frame then comes that
            # much later, which no delay taken before could know. Those frames break the
            # long client's counter (it alone is on the right), and are counted out.
            f = found[0]
            extra = sum(1 for i in range(max(at, 0), f) if right[i] != (v - (f - i)) & 0xFFFF)
            errors.append(f - want - extra)
            inserted.append(extra)
        spans.append(span)
    # Within 0.1 ms, beyond what the moment itself cannot pin down (how long the delay call
    # took under TCG).
    check(all(isinstance(e, int) and abs(e) <= RATE // 10000 + u for e, u in zip(errors, spans)),
          f"snd_pcm_delay was off what the driver played by {errors} frames (±{spans} unknown; "
          f"{inserted} played between that were not the client's; "
          f"N at [...]: the frame found N times within 0.67 s, that far off); the pump: {m.get('status')}")
    check(len(x) > drop + RATE // 4, f"the tape holds {len(x)} frames, the drop came at {drop}")
    check(all(v in (0, 256) for v in x[:first]), "the short client was heard before its first write")
    heard = next((k for k in range(first, len(x)) if x[k] in (3, 259)), None)
    check(heard is not None, "the short client was never heard")
    long_end = max(k for k in range(len(x)) if x[k] in (256, 259)) + 1
    check(all(v in (0, 3) for v in x[long_end:]), "the tape holds something neither client played")
    # Without a rewind either would wait behind the third of a second the slave holds. The
    # goal (the client's latency and a period) is a benchmark: under TCG the pump answers a
    # client in milliseconds, not microseconds (scripts/bench/vm.sh, BENCHMARKS.md). This
    # bound only proves that the rewinds happened and were placed right.
    goal, bound = short + period, RATE // 20
    took, ended = heard - first, long_end - drop
    check(took <= bound, f"the 10 ms client was heard {took} frames after its first write: not rewound")
    check(ended <= bound, f"the dropped client went on {ended} frames after its drop: not rewound")
    return (f"slave buffer {buffer}, period {period}; a {short}-frame client heard {took} frames "
            f"({took * 1000 / RATE:.1f} ms) after its first write; a dropped {m['long_buffer']}-frame "
            f"client ended {ended} frames ({ended * 1000 / RATE:.1f} ms) after its drop; goal {goal}; "
            f"the Python 10 ms client underran {m['short_xruns']} times; "
            f"the long client's snd_pcm_delay off by {errors} frames (±{spans} unknown, "
            f"{sum(inserted)} frames of slave xruns counted out) before and after")


# ---------------------------------------------------------------- runner


def main(argv):
    os.makedirs("/tmp", exist_ok=True)
    chosen = [t for t in TESTS if not argv or any(a in t.__name__ for a in argv)]
    passed = failed = 0
    for t in chosen:
        t0 = time.monotonic()
        made = len(WORLDS)
        stalls_before = driver_stalls()
        try:
            try:
                note = t()
            except Fail as e:
                # Under TCG a host that is busy elsewhere can starve the guest past a device
                # buffer: a slave xrun (and the frames a capture loses with it) then says
                # nothing about rdmix. A run whose pumps logged one is replayed once, and the
                # output says so; a second failure fails.
                xruns = sum(w.slave_xruns() for w in WORLDS[made:])
                # The same starvation can stop the whole guest for more than a device
                # buffer: the test driver's pointer then wraps unseen, and a buffer of
                # capture is lost with no xrun anyone could report. The driver counts those.
                stalled = driver_stalls() - stalls_before
                if "slave xrun" not in str(e) and xruns == 0 and stalled == 0:
                    raise
                e = Fail(f"{e} [{xruns} slave xruns logged, {stalled} guest stalls past a buffer]")
                note = t()
                note = f"{note} (replayed once: {str(e)[:120]})"
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
