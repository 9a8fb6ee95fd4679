//! A program that writes just in time, as `ffmpeg -re` does: 1024-frame packets paced by the
//! wall clock, 5 ms ahead, with start_threshold 1, at every rate from 8 to 192 kHz. Through
//! rdmix it must underrun no more often than the same writer straight on the device, and
//! never stall or fail. The test device takes only 48 kHz (and refuses `plug`'s rate
//! conversion), so the straight figure is measured there, in the same test. A resampled lane once needed a whole
//! resampler block (6.7 ms at 44.1 kHz) more than that: it underran at every packet.
//! And an xrun the pump decided once went unheard when a packet landed just after the
//! pump read the lane: the pump stopped mixing it, the client saw frames queued and no
//! xrun, and its drain timed out with -EIO (the pump's word now carries the xrun).

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::alsa::{Params, Pcm, world};
use common::counting_stream;
use common::s16_bytes;

const PACKET: u64 = 1024;
const LEAD: Duration = Duration::from_millis(5);
const SECONDS: f64 = 1.5;

/// Plays `SECONDS` of packets on `pcm` at `rate`; returns the underruns seen.
fn write_just_in_time(pcm: &str, rate: u32) -> u32 {
    let p = Pcm::open(pcm, false).unwrap_or_else(|e| panic!("{pcm}: open {e}"));
    let buffer = rate as u64 / 2;
    let (_, buffer) = p
        .set_params(Params {
            rate,
            period: PACKET,
            buffer,
            ..Params::default()
        })
        .unwrap_or_else(|e| panic!("{pcm} at {rate} Hz: hw_params {e}"));
    // The stop threshold is the buffer the PCM chose, as ffmpeg leaves it.
    p.set_sw(1, Some(buffer), PACKET).unwrap();
    let data = s16_bytes(&counting_stream(PACKET));
    let packets = (SECONDS * rate as f64) as u64 / PACKET;
    let t0 = Instant::now();
    let mut underruns = 0;
    for k in 0..packets {
        let due = Duration::from_secs_f64((k * PACKET) as f64 / rate as f64).saturating_sub(LEAD);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait); // the program's own pacing, as ffmpeg -re's
        }
        let mut r = p.writei(&data, PACKET);
        if r == -(libc::EPIPE as i64) {
            underruns += 1;
            assert_eq!(p.prepare(), 0, "{pcm} at {rate} Hz: prepare after an underrun");
            r = p.writei(&data, PACKET);
        }
        assert_eq!(r, PACKET as i64, "{pcm} at {rate} Hz: packet {k} of {packets}");
    }
    // A drain ends once the last frame has played; one begun just after an underrun the
    // writer had not yet heard of says so with -EPIPE, and counts as that underrun.
    let d = p.drain();
    if d == -libc::EPIPE {
        underruns += 1;
    } else {
        assert_eq!(d, 0, "{pcm} at {rate} Hz: drain");
    }
    underruns
}

/// One stream at a time in this binary, so that one stream's timing cannot disturb
/// another's: the comparison is with a straight run on an idle machine.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Set `n` of the shared world: `card{n}` is the test device, `mix{n}` rdmix over it.
fn compare(n: u32, rates: &[u32]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    world();
    let straight = write_just_in_time(&format!("card{n}"), 48000);
    for &rate in rates {
        through_rdmix(n, rate, straight);
    }
}

fn through_rdmix(n: u32, rate: u32, straight: u32) {
    let through = write_just_in_time(&format!("mix{n}"), rate);
    eprintln!(
        "MEASURE just-in-time writer at {rate} Hz, 5 ms ahead: {through} underruns through rdmix, {straight} straight"
    );
    // A loaded machine can make the writer itself late now and then, whichever way it plays.
    assert!(
        through <= straight + 1,
        "{rate} Hz: {through} underruns through rdmix against {straight} straight"
    );
}

#[test]
fn at_8_11_and_16_khz() {
    compare(1, &[8000, 11025, 16000]);
}

#[test]
fn at_22_32_and_44_khz() {
    compare(2, &[22050, 32000, 44100]);
}

#[test]
fn at_48_88_and_96_khz() {
    compare(3, &[48000, 88200, 96000]);
}

#[test]
fn at_176_and_192_khz() {
    compare(4, &[176400, 192000]);
}
