//! Capture semantics through real alsa-lib, one test per behaviour, as `conformance.rs` does
//! for playback: a `type rdmix` PCM opened for capture must behave like a capture card. The
//! test device's capture side counts frames on channel 0 (see `common::mic`), so every read
//! says exactly which device frames it got. Each test records from its own set `mixN`.
// snd_pcm_sframes_t is 32 bits on 32-bit targets: the casts to i64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use alsa_sys as a;
use common::alsa::{Params, Pcm};
use common::mic::counter_breaks;
use common::*;

const FB: usize = 4;

fn open(n: u32, nonblock: bool) -> Pcm {
    let pcm = Pcm::open_capture(&format!("mix{n}"), nonblock).unwrap();
    pcm.set_params(Params::default()).unwrap();
    pcm.set_sw(1, Some(1920), 480).unwrap();
    pcm
}

use common::mic::s16_counter as counter;

fn wait_avail(p: &Pcm, at_least: i64) -> i64 {
    let mut got = 0;
    wait_until(
        Duration::from_secs(10),
        || {
            got = p.avail();
            got >= at_least || got < 0
        },
        || format!("avail never reached {at_least}"),
    );
    got
}

#[test]
fn a_read_starts_the_stream_and_explicit_start_works_too() {
    let p = open(0, false);
    assert_eq!(p.state(), a::SND_PCM_STATE_PREPARED);
    assert_eq!(p.avail(), 0, "nothing is captured before the start");
    let first = p.read_exact(960, FB);
    assert_eq!(p.state(), a::SND_PCM_STATE_RUNNING, "the first read started it");
    let more = p.read_exact(960, FB);
    let c: Vec<i16> = counter(&first).into_iter().chain(counter(&more)).collect();
    assert_eq!(counter_breaks(&c), Vec::<usize>::new());

    let q = open(1, false);
    assert_eq!(q.start(), 0);
    assert_eq!(q.state(), a::SND_PCM_STATE_RUNNING);
    assert!(wait_avail(&q, 480) >= 480, "an explicit start captures");
}

#[test]
fn poll_wakes_at_avail_min_and_nonblocking_reads_say_eagain() {
    let p = open(2, true);
    let mut buf = vec![0u8; 4800 * FB];
    assert_eq!(p.start(), 0);
    // Right after the start nothing is captured yet: a non-blocking read does not wait.
    let r = p.readi(&mut buf, 4800);
    assert!(r == -libc::EAGAIN as i64 || (0..480).contains(&r), "readi: {r}");
    let mut total: Vec<i16> = counter(&buf[..r.max(0) as usize * FB]);
    for _ in 0..20 {
        let mut fds = p.poll_fds();
        assert!(rdmix_poll(&mut fds, 5000) > 0, "poll timed out");
        let rev = p.poll_revents(&mut fds);
        if rev & libc::POLLIN as u16 == 0 {
            continue; // a wake-up the plugin answered "not yet"
        }
        let avail = p.avail();
        assert!(avail >= 480, "POLLIN with avail {avail} below avail_min");
        let r = p.readi(&mut buf, avail as u64);
        assert_eq!(r, avail);
        total.extend(counter(&buf[..r as usize * FB]));
    }
    assert!(total.len() >= 20 * 480);
    assert_eq!(counter_breaks(&total), Vec::<usize>::new());
}

#[test]
fn an_overrun_is_reported_at_stop_threshold_and_prepare_recovers() {
    let p = open(3, false);
    assert_eq!(p.start(), 0);
    // Nobody reads: once avail reaches stop_threshold (the buffer) the stream overruns.
    wait_until(
        Duration::from_secs(10),
        || p.avail() == -libc::EPIPE as i64,
        || "the stream never overran".into(),
    );
    assert_eq!(p.state(), a::SND_PCM_STATE_XRUN);
    let mut buf = vec![0u8; 480 * FB];
    assert_eq!(p.readi(&mut buf, 480), -libc::EPIPE as i64);
    assert_eq!(p.recover(-libc::EPIPE), 0);
    let got = p.read_exact(4800, FB);
    assert_eq!(
        counter_breaks(&counter(&got)),
        Vec::<usize>::new(),
        "exact again after recovery"
    );

    // With stop_threshold at the boundary it never stops, as on hardware.
    let q = open(4, false);
    q.set_sw(1, None, 480).unwrap();
    assert_eq!(q.start(), 0);
    let avail = wait_avail(&q, 2 * 1920);
    assert!(avail >= 2 * 1920, "avail runs past the buffer without an xrun: {avail}");
    assert_eq!(q.state(), a::SND_PCM_STATE_RUNNING);
}

#[test]
fn delay_counts_the_lane_and_the_device_queue() {
    let p = open(5, false);
    assert_eq!(p.start(), 0);
    let _ = p.read_exact(960, FB);
    let dev_buffer = 4096; // the test device's buffer is smaller than this
    for _ in 0..10 {
        let (avail, delay) = p.avail_delay().unwrap();
        assert!(
            delay >= avail,
            "delay {delay} is at least what waits to be read ({avail})"
        );
        assert!(delay <= avail + dev_buffer, "delay {delay}, avail {avail}");
        let _ = p.read_exact(480, FB);
    }
}

#[test]
fn pause_stops_capturing_and_resumes_without_a_lost_read() {
    let p = open(6, false);
    assert!(p.can_pause());
    let before = p.read_exact(960, FB);
    assert_eq!(p.pause(true), 0);
    assert_eq!(p.state(), a::SND_PCM_STATE_PAUSED);
    let held = p.avail();
    // A second recorder shows time passing while the first stays paused.
    let other = open(7, false);
    let _ = other.read_exact(4800, FB);
    assert_eq!(p.avail(), held, "nothing is captured while paused");
    assert_eq!(p.pause(false), 0);
    let after = p.read_exact(held as u64 + 960, FB);
    let (cb, ca) = (counter(&before), counter(&after));
    assert_eq!(counter_breaks(&ca[..held as usize]), Vec::<usize>::new());
    assert_eq!(
        ca[0],
        cb[959].wrapping_add(1),
        "what was captured before the pause is read first"
    );
    let breaks = counter_breaks(&ca);
    assert!(breaks.len() <= 1, "one gap at most, where the pause was: {breaks:?}");
}

#[test]
fn drop_stops_and_drain_leaves_what_was_captured() {
    let p = open(8, false);
    let _ = p.read_exact(480, FB);
    assert_eq!(p.drop_(), 0);
    assert_eq!(p.state(), a::SND_PCM_STATE_SETUP);
    let mut buf = vec![0u8; 480 * FB];
    assert_eq!(p.readi(&mut buf, 480), -libc::EBADFD as i64, "no reads after a drop");

    assert_eq!(p.prepare(), 0);
    assert_eq!(p.start(), 0);
    let left = wait_avail(&p, 960);
    assert_eq!(p.drain(), 1, "a capture drain leaves frames to read");
    assert_eq!(p.state(), a::SND_PCM_STATE_DRAINING);
    let avail = p.avail();
    assert!(avail >= left, "nothing captured is lost: {avail} < {left}");
    let rest = p.read_exact(avail as u64, FB);
    assert_eq!(counter_breaks(&counter(&rest)), Vec::<usize>::new());
    assert_eq!(p.readi(&mut buf, 480), 0, "nothing more once it is all read");
    assert_eq!(p.state(), a::SND_PCM_STATE_SETUP, "then it stops, as the kernel's does");
}

#[test]
fn rewind_rereads_and_forward_skips() {
    let p = open(9, false);
    let first = p.read_exact(480, FB);
    assert!(p.rewindable() >= 480, "rewindable {}", p.rewindable());
    assert_eq!(p.rewind(480), 480);
    let again = p.read_exact(480, FB);
    assert_eq!(first, again, "a rewound read gets the same frames");
    let _ = wait_avail(&p, 600);
    assert!(p.forwardable() >= 100);
    assert_eq!(p.forward(100), 100);
    let next = counter(&p.read_exact(1, FB))[0];
    assert_eq!(
        next,
        counter(&again)[479].wrapping_add(101),
        "forward skipped 100 frames"
    );
}

/// Every format, the rates from 8 to 192 kHz and 1 to 8 channels: each client hears the
/// tone at its level and pitch; a client that matches the device in rate and layout gets
/// the counter exact.
#[test]
fn every_format_rate_and_layout_records() {
    use asound_module_pcm_rdmix::dsp::format::FORMATS;
    let mut cases: Vec<(a::snd_pcm_format_t, u32, u32)> = FORMATS.iter().map(|f| (f.id, 48000, 2)).collect();
    cases.extend([8000, 11025, 22050, 44100, 96000, 192000].map(|r| (a::SND_PCM_FORMAT_S16_LE, r, 2)));
    cases.extend([1, 4, 6, 8].map(|c| (a::SND_PCM_FORMAT_FLOAT_LE, 48000, c)));
    for (format, rate, channels) in cases {
        let p = Pcm::open_capture("mix10", false).unwrap();
        let f = asound_module_pcm_rdmix::dsp::format::Format::lookup(format).unwrap();
        let fb = f.sample_bytes() * channels as usize;
        let period = (rate / 100) as u64;
        p.set_params(Params {
            format,
            rate,
            channels,
            period,
            buffer: period * 4,
            ..Params::default()
        })
        .unwrap_or_else(|e| panic!("{} {rate} Hz {channels} ch: {e}", f.name()));
        let frames = rate as u64 / 2;
        let raw = p.read_exact(frames, fb);
        let mut dec = vec![0f32; raw.len() / f.sample_bytes()];
        asound_module_pcm_rdmix::dsp::mix::decode_f32(f, &raw, &mut dec);
        let ch = |c: usize| -> Vec<f64> {
            dec.iter()
                .skip(c)
                .step_by(channels as usize)
                .map(|v| *v as f64)
                .collect()
        };
        let what = format!("{} {rate} Hz {channels} ch", f.name());
        // Stereo keeps the tone on channel 1; mono hears both device channels at half.
        let (tone_ch, want) = if channels == 1 { (0, 0.25) } else { (1, 0.5) };
        let skip = rate as usize / 20; // a resampler's start-up
        let (amp, _) = common::mic::tone(&ch(tone_ch), rate, skip);
        let tol = if f.sample_bytes() == 1 { 0.02 } else { 0.005 };
        assert!((amp - want).abs() < tol, "{what}: tone level {amp}, want {want}");
        if rate == 48000 && channels == 2 && f.sample_bytes() >= 2 {
            let c: Vec<i16> = ch(0).iter().map(|v| (v * 32768.0).round() as i16).collect();
            assert_eq!(counter_breaks(&c), Vec::<usize>::new(), "{what}: the counter, exact");
        }
    }
}
