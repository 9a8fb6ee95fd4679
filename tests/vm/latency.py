#!/usr/bin/env python3
"""How soon a change is heard through rdmix when its slave is filled far ahead, through
alsa-lib itself (ctypes), on the copy-only test driver. Two clients of PCM `mix` in one
process: a long one with aplay's 500 ms buffer plays the constant 256 on the left and
guest.py's counter on the right; once its stream is 1.5 s old, a short one with a 10 ms
buffer (480 frames of FLOAT64, the one format whose 4-period floor lets a buffer that
small) starts playing the constant 3 on the left; 1 s later the long one is dropped. The
tape frame playing at a moment is the driver's tape length moved on at the rate from the
instant of the update that set it (both in guest.py's status, read under the tape's lock).
The long client's snd_pcm_delay is sampled so, before and after the short one's start: the
frame it says plays next must be found that far down the tape. Prints one JSON line: the tape frame at the short client's
first write, at the long one's drop, each one's buffer, and the delay samples (tape frame,
delay, the long client's next frame).

    python3 tests/vm/latency.py        # run by guest.py's a_change_is_heard_within_..."""
import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import RATE, Fail, playing_now, status, tape_at, wait_for  # noqa: E402  (one reader of each)

S16, FLOAT64, RW_INTERLEAVED = 2, 16, 3

lib = ctypes.CDLL("libasound.so.2")
lib.snd_strerror.restype = ctypes.c_char_p
lib.snd_pcm_writei.restype = ctypes.c_long
lib.snd_pcm_writei.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong]
lib.snd_pcm_recover.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
lib.snd_pcm_delay.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_long)]
for f in ("snd_pcm_drain", "snd_pcm_close", "snd_pcm_drop"):
    getattr(lib, f).argtypes = [ctypes.c_void_p]


def must(r, what):
    if r < 0:
        raise Fail(f"{what}: {lib.snd_strerror(int(r)).decode()}")
    return r


def open_pcm(fmt, latency_us):
    pcm = ctypes.c_void_p()
    must(lib.snd_pcm_open(ctypes.byref(pcm), b"mix", 0, 0), "open mix")
    must(lib.snd_pcm_set_params(pcm, fmt, RW_INTERLEAVED, 2, RATE, 0, latency_us), "set_params")
    buf, per = ctypes.c_ulong(), ctypes.c_ulong()
    lib.snd_pcm_get_params(pcm, ctypes.byref(buf), ctypes.byref(per))
    return pcm, buf.value


def played():
    return status()["played_frames"]


def long_frames(k, n):
    """Frames k.. of the long client: 256 on the left, the counter k+1 on the right."""
    return b"".join(struct.pack("<hH", 256, (j + 1) & 0xFFFF) for j in range(k, k + n))


def writer(pcm, frame, frames, what, xruns=None):
    """Writes `frames` frames of `frame` (or of what `frame(k, n)` makes for frames k..k+n)
    in 120-frame chunks, blocking. An underrun (a Python client of a 10 ms buffer on a
    loaded emulated machine) is recovered, as aplay does, and counted in `xruns`."""
    left = frames
    while left > 0:
        n = min(left, 120)
        chunk = frame * n if isinstance(frame, bytes) else frame(frames - left, n)
        r = lib.snd_pcm_writei(pcm, chunk, n)
        if r == -32 and xruns is not None:
            xruns.append(1)
            must(lib.snd_pcm_recover(pcm, r, 1), f"{what}: recover")
            continue
        must(r, what)
        left -= r


def main():
    long_pcm, long_buf = open_pcm(S16, 500000)
    short_pcm, short_buf = open_pcm(FLOAT64, 10000)
    third = struct.pack("<dd", 3 / 32768, 0.0)
    marks = {}
    xruns = []
    go, stop = threading.Event(), threading.Event()

    def short_client():
        go.wait()
        marks["first_write"] = playing_now()
        # The whole buffer at once, as aplay's first writes are: the stream starts at once.
        must(lib.snd_pcm_writei(short_pcm, third * short_buf, short_buf), "short first writei")
        while not stop.is_set():
            writer(short_pcm, third, 480, "short writei", xruns)
        lib.snd_pcm_drain(short_pcm)

    t = threading.Thread(target=short_client)
    t.start()
    try:
        delays = marks["delays"] = []
        written = 0

        def play(n):
            nonlocal written
            writer(long_pcm, lambda k, m: long_frames(written + k, m), n, "long writei")
            written += n

        def sample_delay():
            # The delay was taken somewhere in [d0, d1]: the frame it names is the one
            # playing then, the midpoint, plus the delay, give or take half the span.
            frames, ns = tape_at()
            d = ctypes.c_long()
            d0 = time.monotonic_ns()
            must(lib.snd_pcm_delay(long_pcm, ctypes.byref(d)), "delay")
            d1 = time.monotonic_ns()
            at = frames + ((d0 + d1) // 2 - ns) * RATE // 1_000_000_000
            delays.append((at, d.value, written, -(-(d1 - d0) * RATE // 2_000_000_000)))

        play(RATE * 3 // 2)
        for _ in range(3):
            sample_delay()
            play(RATE // 20)
        go.set()
        play(RATE // 10)
        for _ in range(4):
            sample_delay()
            play(RATE // 10)
        # Every sampled frame must have played before the drop takes back what is queued:
        # the slave alone may hold a third of a second of the long client.
        last = max(at + delay for at, delay, _, _ in delays) + RATE // 10
        while played() < last:
            play(RATE // 20)
        # What the pump counted for each client (its underruns), for a failure's message.
        st = subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "release", "rdmix-status"), "--json"],
                            capture_output=True, text=True, timeout=10)
        marks["status"] = st.stdout.strip()[-600:]
        marks["drop"] = playing_now()
        must(lib.snd_pcm_drop(long_pcm), "drop")
        wait_for("0.5 s of the short client alone", lambda: played() >= marks["drop"] + RATE // 2, 10)
    finally:
        stop.set()
        go.set()
        t.join()
        lib.snd_pcm_close(short_pcm)
        lib.snd_pcm_close(long_pcm)
    print(json.dumps({**marks, "long_buffer": long_buf, "short_buffer": short_buf, "short_xruns": len(xruns)}), flush=True)


if __name__ == "__main__":
    main()
