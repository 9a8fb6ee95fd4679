#!/usr/bin/env python3
"""How far a playing PCM lets a program rewind, through alsa-lib itself (ctypes): for each
PCM named, plays guest.py's counter (frame k holds k+1 and its complement), waits until
40 ms of it has played, rewinds all it may but two periods, writes as many frames of a
marker (11 22 33 44) in its place, and drains. Prints one JSON line per PCM: buffer,
written, rewindable, rewound, or the error.

    python3 tests/vm/rewind.py PCM...      # run by guest.py's which_devices_rewind
"""
import ctypes
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guest import RATE, Fail, counter_frames, wait_for  # noqa: E402  (one counter, one wait)


class Probe(Exception):
    pass


def probe(name, data, played_ms=40):
    """Plays `data` (S16 stereo, 48 kHz) on PCM `name`, waits until `played_ms` of it has
    played, rewinds all it may but two periods, writes a marker in its place and drains.
    Returns what it measured, or raises Probe with alsa-lib's error."""
    lib = ctypes.CDLL("libasound.so.2")
    lib.snd_strerror.restype = ctypes.c_char_p
    for f in ("snd_pcm_writei", "snd_pcm_rewindable", "snd_pcm_rewind", "snd_pcm_avail"):
        getattr(lib, f).restype = ctypes.c_long
    lib.snd_pcm_avail.argtypes = [ctypes.c_void_p]
    lib.snd_pcm_writei.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong]
    lib.snd_pcm_rewindable.argtypes = [ctypes.c_void_p]
    lib.snd_pcm_rewind.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    for f in ("snd_pcm_drain", "snd_pcm_close", "snd_pcm_drop"):
        getattr(lib, f).argtypes = [ctypes.c_void_p]
    pcm = ctypes.c_void_p()

    def must(r, what):
        if r < 0:
            raise Probe(f"{what}: {lib.snd_strerror(int(r)).decode()}")
        return r

    must(lib.snd_pcm_open(ctypes.byref(pcm), name.encode(), 0, 0), "open")
    try:
        # S16_LE (2), RW_INTERLEAVED (3), 2 channels, 48 kHz, no resampling, 170 ms.
        must(lib.snd_pcm_set_params(pcm, 2, 3, 2, RATE, 0, 170000), "set_params")
        buf = ctypes.c_ulong()
        per = ctypes.c_ulong()
        lib.snd_pcm_get_params(pcm, ctypes.byref(buf), ctypes.byref(per))
        n = min(buf.value, len(data) // 4)
        must(lib.snd_pcm_writei(pcm, data[: 4 * n], n), "writei")
        # The device plays meanwhile: wait until it has played `played_ms` of it.
        wait_for(f"{name} to play {played_ms} ms", lambda: lib.snd_pcm_avail(pcm) >= RATE * played_ms // 1000, 5)
        can = lib.snd_pcm_rewindable(pcm)
        # All but a margin of two periods: a rewind to the hardware pointer itself leaves
        # the device nothing to play before the marker is written.
        want = can - 2 * per.value
        did = lib.snd_pcm_rewind(pcm, want) if want > 0 else 0
        marker = bytes([0x11, 0x22, 0x33, 0x44]) * max(did, 0)
        if did > 0:
            must(lib.snd_pcm_writei(pcm, marker, did), "writei after the rewind")
        lib.snd_pcm_drain(pcm)
        return {"buffer": buf.value, "written": n, "rewindable": can, "rewound": max(did, 0)}
    finally:
        lib.snd_pcm_close(pcm)




def main(names):
    data = counter_frames(RATE)
    for name in names:
        try:
            r = probe(name, data)
        except (Probe, Fail) as e:
            r = {"error": str(e)}
        print(json.dumps({"pcm": name, **r}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
