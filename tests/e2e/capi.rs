//! rdmix through the ALSA C API, in process: constraints, every access type, format
//! conversion, drain and poll. Each test uses its own `pcm.mixN` (own pump, own recording).

// snd_pcm_uframes_t is 32 bits on 32-bit targets: the casts to u64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use alsa_sys as a;
use common::alsa::{Ctl, CtlEvent, Params, Pcm, pumps_of_set, rec_path, world};
use common::*;

/// The recording of set `n` from its first non-silent frame, once its pump has exited.
fn recorded(n: u32) -> Vec<[i16; 2]> {
    let path = rec_path(n);
    let pump_gone = || pumps_of_set(n).is_empty();
    wait_until(Duration::from_secs(10), pump_gone, || {
        format!("pump of set {n} still running")
    });
    let rec = read_rec_s16(&path);
    let start = rec.iter().position(|f| *f != [0, 0]).unwrap_or(rec.len());
    rec[start..].to_vec()
}

#[test]
fn constraints_tell_the_truth() {
    let p = Pcm::open("mix0", false).unwrap();
    // Every client rate from 8 to 192 kHz and 1 to 8 channels is converted; nothing else is.
    for r in [8000, 11025, 22050, 44100, 48000, 96000, 192000] {
        assert!(p.test_rate(r), "rate {r}");
    }
    assert!(!p.test_rate(7999) && !p.test_rate(192001));
    let near = p.with_space(|hw| {
        let mut r = 44100;
        // SAFETY: live PCM and params; r is ours.
        unsafe { a::snd_pcm_hw_params_set_rate_near(p.0, hw, &mut r, std::ptr::null_mut()) };
        r
    });
    assert_eq!(near, 44100, "set_rate_near(44100) gets 44100, not the device's 48000");
    for ch in 1..=8 {
        assert!(p.test_channels(ch), "{ch} channels");
    }
    assert!(!p.test_channels(9));
    for acc in [
        a::SND_PCM_ACCESS_RW_INTERLEAVED,
        a::SND_PCM_ACCESS_RW_NONINTERLEAVED,
        a::SND_PCM_ACCESS_MMAP_INTERLEAVED,
        a::SND_PCM_ACCESS_MMAP_NONINTERLEAVED,
    ] {
        assert!(p.test_access(acc), "access {acc}");
    }
    for f in [
        a::SND_PCM_FORMAT_S16_LE,
        a::SND_PCM_FORMAT_S32_LE,
        a::SND_PCM_FORMAT_FLOAT_LE,
        a::SND_PCM_FORMAT_S24_3LE,
    ] {
        assert!(p.test_format(f), "format {f}");
    }
    assert!(!p.test_format(a::SND_PCM_FORMAT_MU_LAW));
    assert!(p.test_buffer_size(4096));
    assert!(
        !p.test_buffer_size(1 << 21),
        "a buffer larger than a lane is refused at refine time"
    );
    // What refine allows actually installs.
    let (period, buffer) = p
        .set_params(Params {
            period: 333,
            buffer: 1332,
            ..Params::default()
        })
        .unwrap();
    assert_eq!((period, buffer), (333, 1332));
}

fn play_and_drain(p: &Pcm, data: &[u8], frames: u64) {
    p.write_all(data, data.len() / frames as usize);
    assert_eq!(p.drain(), 0);
    assert_eq!(p.state(), a::SND_PCM_STATE_SETUP);
}

#[test]
fn s32_and_float_clients_convert_into_an_s16_device() {
    let n = 4800u64;
    // S32: the top 16 bits reach the device.
    let p = Pcm::open("mix1", false).unwrap();
    p.set_params(Params {
        format: a::SND_PCM_FORMAT_S32_LE,
        ..Params::default()
    })
    .unwrap();
    let vals: Vec<[i32; 2]> = (0..n as i32)
        .map(|k| [(k + 1) << 16 | 0x7fff, -((k + 1) << 16)])
        .collect();
    let data: Vec<u8> = vals
        .iter()
        .flat_map(|f| [f[0].to_le_bytes(), f[1].to_le_bytes()].concat())
        .collect();
    play_and_drain(&p, &data, n);
    drop(p);
    let rec = recorded(1);
    assert!(rec.len() >= n as usize);
    for (k, f) in rec[..n as usize].iter().enumerate() {
        assert_eq!(*f, [(k + 1) as i16, -((k + 1) as i16)], "frame {k}");
    }

    // FLOAT: full scale is 32768, out-of-range values saturate.
    let p = Pcm::open("mix2", false).unwrap();
    p.set_params(Params {
        format: a::SND_PCM_FORMAT_FLOAT_LE,
        ..Params::default()
    })
    .unwrap();
    let vals: Vec<[f32; 2]> = (0..n).map(|k| [0.25 + k as f32 / 65536.0, -2.0]).collect();
    let data: Vec<u8> = vals
        .iter()
        .flat_map(|f| [f[0].to_le_bytes(), f[1].to_le_bytes()].concat())
        .collect();
    play_and_drain(&p, &data, n);
    drop(p);
    let rec = recorded(2);
    for (k, f) in rec[..n as usize].iter().enumerate() {
        let want = (vals[k][0] as f64 * 32768.0).round_ties_even() as i16;
        assert_eq!(*f, [want, -32768], "frame {k}");
    }
}

#[test]
fn noninterleaved_access_is_interleaved_into_the_lane() {
    let n = 4800u64;
    let left: Vec<i16> = (0..n as i16).map(|k| k + 1).collect();
    let right: Vec<i16> = (0..n as i16).map(|k| -(k + 1)).collect();
    let lb: Vec<u8> = left.iter().flat_map(|v| v.to_le_bytes()).collect();
    let rb: Vec<u8> = right.iter().flat_map(|v| v.to_le_bytes()).collect();
    let p = Pcm::open("mix3", false).unwrap();
    p.set_params(Params {
        access: a::SND_PCM_ACCESS_RW_NONINTERLEAVED,
        ..Params::default()
    })
    .unwrap();
    let mut off = 0u64;
    while off < n {
        let w = p.writen(&[&lb[off as usize * 2..], &rb[off as usize * 2..]], n - off);
        assert!(w > 0, "writen: {w}");
        off += w as u64;
    }
    assert_eq!(p.drain(), 0);
    drop(p);
    let rec = recorded(3);
    for k in 0..n as usize {
        assert_eq!(rec[k], [left[k], right[k]], "frame {k}");
    }
}

#[test]
fn drain_returns_after_the_last_frame_reached_the_device() {
    let p = Pcm::open("mix4", false).unwrap();
    p.set_params(Params::default()).unwrap();
    let n = 24_000u64; // 0.5 s
    let frames: Vec<[i16; 2]> = (0..n).map(|k| [(k % 1000 + 1) as i16, 7]).collect();
    let t0 = Instant::now();
    play_and_drain(&p, &s16_bytes(&frames), n);
    let took = t0.elapsed();
    // Every frame is in the device's recording the moment drain returns...
    let rec = read_rec_s16(&rec_path(4));
    let start = rec.iter().position(|f| *f != [0, 0]).expect("something recorded");
    assert!(
        rec.len() >= start + n as usize,
        "drain returned before the device had every frame"
    );
    assert_eq!(&rec[start..start + n as usize], &frames[..]);
    // ...and drain took at least the audio's own duration (it waits for the device).
    assert!(took >= Duration::from_millis(480), "drain returned after {took:?}");
}

#[test]
fn nonblocking_writes_and_poll_wake_on_avail_min() {
    let p = Pcm::open("mix5", true).unwrap();
    let (period, buffer) = p
        .set_params(Params {
            period: 480,
            buffer: 1920,
            ..Params::default()
        })
        .unwrap();
    p.set_sw(buffer, Some(buffer), period).unwrap();
    let data = s16_bytes(&vec![[100, -100]; buffer as usize]);
    // Fill to the brim: the next write says EAGAIN.
    let mut written = 0;
    loop {
        let r = p.writei(&data, buffer);
        if r == -(libc::EAGAIN as i64) {
            break;
        }
        assert!(r > 0, "writei: {r}");
        written += r;
        assert!(written <= 10 * buffer as i64, "never got EAGAIN");
    }
    assert_eq!(p.state(), a::SND_PCM_STATE_RUNNING);
    // Poll until the PCM says POLLOUT; then avail must really be >= avail_min.
    let mut wakes = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while wakes < 20 {
        let mut fds = p.poll_fds();
        assert!(!fds.is_empty());
        let n = rdmix_poll(&mut fds, 2000);
        assert!(n > 0, "poll timed out");
        let rev = p.poll_revents(&mut fds);
        if rev & libc::POLLOUT as u16 != 0 {
            let avail = p.avail();
            assert!(
                avail >= period as i64,
                "POLLOUT with avail {avail} < avail_min {period}"
            );
            let w = p.writei(&data, avail as u64);
            assert_eq!(w, avail);
            wakes += 1;
        }
        assert!(Instant::now() < end, "poll did not keep waking");
    }
    p.drop_();
}

/// hw_params and sw_params at their limits: each either works or is refused at refine time.
#[test]
fn params_at_their_limits_work_or_are_refused_at_refine() {
    use common::alsa::Params;
    let p = Pcm::open("mix26", false).unwrap();
    let (bmin, bmax, pmin) = p.with_space(|hw| {
        let (mut bmin, mut bmax, mut pmin) = (0, 0, 0);
        let mut dir = 0;
        // SAFETY: live PCM and params; out-parameters are ours.
        unsafe {
            a::snd_pcm_hw_params_set_format(p.0, hw, a::SND_PCM_FORMAT_S16_LE);
            a::snd_pcm_hw_params_set_channels(p.0, hw, 2);
            a::snd_pcm_hw_params_get_buffer_size_min(hw, &mut bmin);
            a::snd_pcm_hw_params_get_buffer_size_max(hw, &mut bmax);
            a::snd_pcm_hw_params_get_period_size_min(hw, &mut pmin, &mut dir);
        }
        (bmin as u64, bmax as u64, pmin as u64)
    });
    eprintln!("MEASURE limits (S16 stereo): buffer {bmin}..{bmax} frames, period >= {pmin} frames");
    let s16_buffer_ok = |frames: u64| {
        p.with_space(|hw| {
            // SAFETY: live PCM and params.
            unsafe {
                a::snd_pcm_hw_params_set_format(p.0, hw, a::SND_PCM_FORMAT_S16_LE);
                a::snd_pcm_hw_params_set_channels(p.0, hw, 2);
                a::snd_pcm_hw_params_test_buffer_size(p.0, hw, frames as _) == 0
            }
        })
    };
    assert!(s16_buffer_ok(bmin) && s16_buffer_ok(bmax));
    assert!(!s16_buffer_ok(bmin - 1) && !s16_buffer_ok(bmax + 1));
    // Refine refuses a 1-frame period and a buffer of a single period outright.
    let one_frame = p.with_space(|hw| {
        // SAFETY: live PCM and params.
        unsafe {
            a::snd_pcm_hw_params_set_format(p.0, hw, a::SND_PCM_FORMAT_S16_LE);
            a::snd_pcm_hw_params_set_channels(p.0, hw, 2);
            a::snd_pcm_hw_params_test_period_size(p.0, hw, 1, 0) == 0
        }
    });
    assert!(!one_frame, "a 1-frame period is refused at refine time");
    let one_period = p.with_space(|hw| {
        // SAFETY: live PCM and params.
        unsafe { a::snd_pcm_hw_params_test_periods(p.0, hw, 1, 0) == 0 }
    });
    assert!(!one_period, "a buffer of one period is refused at refine time");
    drop(p);
    // The floor for the widest frame (8 channels) is one device period: it installs and
    // plays to the end.
    {
        let p = Pcm::open("mix27", false).unwrap();
        let (gp, gb) = p
            .set_params(Params {
                channels: 8,
                period: 64,
                buffer: 1,
                ..Params::default()
            })
            .expect("the smallest 8-channel buffer installs");
        // A 5 ms buffer is a latency target, not a property: on a loaded machine the test
        // thread itself may be late, so an underrun is measured, and recovered from.
        let n = 9600u64;
        let xruns = play_counting_xruns(&p, &vec![0u8; n as usize * 16], 16);
        eprintln!("MEASURE limits: 8 channels, period {gp} buffer {gb}: {xruns} xruns over {n} frames");
        assert_eq!((gp, gb), (64, 256), "the floor is one device period of 8 channels");
    }
    // And what refine allows at the edges plays every frame.
    for (i, (period, buffer)) in [
        (pmin, bmin),
        (bmin / 2, bmin),
        (pmin, 4 * pmin.max(bmin / 4)),
        (bmax / 2, bmax),
    ]
    .into_iter()
    .enumerate()
    {
        let set = 26 + i as u32 % 2;
        let p = Pcm::open(&format!("mix{set}"), false).unwrap();
        let got = p.set_params(Params {
            period,
            buffer,
            ..Params::default()
        });
        let Ok((gp, gb)) = got else {
            panic!("refine allowed period {period} / buffer {buffer} but hw_params failed: {got:?}")
        };
        let n = 9600u64;
        let frames: Vec<[i16; 2]> = (0..n).map(|k| [(k % 30000 + 1) as i16, 5]).collect();
        let runs = play_until_clean(&p, &s16_bytes(&frames), 4);
        eprintln!("MEASURE limits: period {gp} buffer {gb}: xruns per run over {n} frames: {runs:?}");
        assert_eq!(runs.last(), Some(&0), "period {gp} / buffer {gb} underran in every run");
    }
}

/// Writes all of `data` (frames of `fb` bytes), recovering from xruns; drains; returns how
/// many xruns there were.
/// Plays `data` until a run has no underrun, at most three times; returns each run's
/// xruns. On a loaded machine the test thread itself can be late for a small buffer once:
/// that is load, not a defect of the sizes; sizes that cannot play cleanly fail every run.
fn play_until_clean(p: &Pcm, data: &[u8], fb: usize) -> Vec<u32> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        assert_eq!(p.prepare(), 0);
        let xruns = play_counting_xruns(p, data, fb);
        runs.push(xruns);
        if xruns == 0 {
            break;
        }
    }
    runs
}

fn play_counting_xruns(p: &Pcm, data: &[u8], fb: usize) -> u32 {
    let n = (data.len() / fb) as u64;
    let (mut off, mut xruns) = (0u64, 0);
    while off < n {
        let r = p.writei(&data[off as usize * fb..], n - off);
        if r == -(libc::EPIPE as i64) {
            xruns += 1;
            p.recover(-libc::EPIPE);
            continue;
        }
        assert!(r > 0, "writei {r}");
        off += r as u64;
    }
    assert_eq!(p.drain(), 0);
    xruns
}

/// The control plugin through the C API, as a mixer uses it: a program's elements come
/// with its open and go with its close, as events, and another mixer's change arrives as a
/// value event. A pump a mixer watches closes its device a linger after the last program
/// (the device is free) and opens it again for the next; with the mixer gone, it exits.
#[test]
fn mixer_events_follow_programs_and_a_watched_pump_frees_its_device() {
    let n = 35;
    let mixer = Ctl::open(&format!("mix{n}")).expect("ctl.mix35 opens");
    mixer.subscribe();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let program = format!("{} {}", comm.trim_end(), std::process::id());
    let (volume, switch) = (
        format!("{program} Playback Volume"),
        format!("{program} Playback Switch"),
    );
    let play = || {
        let p = Pcm::open(&format!("mix{n}"), false).unwrap();
        p.set_params(Params::default()).unwrap();
        p.write_all(&vec![0u8; 4 * 4800], 4);
        p
    };
    let p = play();
    let seen = mixer.wait_events(Duration::from_secs(10), |e| {
        e.contains(&CtlEvent::Add(volume.clone())) && e.contains(&CtlEvent::Add(switch.clone()))
    });
    eprintln!("MEASURE ctl events on open: {seen:?}");
    let other = Ctl::open(&format!("mix{n}")).unwrap();
    other
        .write(&volume, 216)
        .expect("another mixer sets the program's volume");
    mixer.wait_events(Duration::from_secs(10), |e| {
        e.contains(&CtlEvent::Value(volume.clone()))
    });
    // Back to 0 dB, which forgets it: every test here is the same program, and a volume
    // set for it is remembered for its next open.
    other.write(&volume, 240).unwrap();
    drop(other);
    drop(p);
    mixer.wait_events(Duration::from_secs(10), |e| {
        e.contains(&CtlEvent::Remove(volume.clone())) && e.contains(&CtlEvent::Remove(switch.clone()))
    });
    let log = || world().pump_log();
    let closing = format!("closing \"card{n}\"");
    wait_until(
        Duration::from_secs(10),
        || log().contains(&closing),
        || format!("the watched pump never closed its device: {}", log()),
    );
    assert!(!pumps_of_set(n).is_empty(), "the watched pump stays");
    // The next program opens the device again, on the same pump.
    let pump = pumps_of_set(n);
    let p = play();
    mixer.wait_events(Duration::from_secs(10), |e| e.contains(&CtlEvent::Add(volume.clone())));
    assert_eq!(pumps_of_set(n), pump, "the same pump serves the next program");
    drop(p);
    // A pump killed under a mixer: the mixer notices the hang-up when it next looks, and
    // reaches a new pump (started as a program would start it), which then serves it.
    mixer.wait_events(Duration::from_secs(10), |e| {
        e.contains(&CtlEvent::Remove(volume.clone()))
    });
    let is_playback = |p: &i32| {
        !std::fs::read_to_string(format!("/proc/{p}/cmdline"))
            .unwrap_or_default()
            .contains("--capture")
    };
    let old: Vec<i32> = pump.iter().copied().filter(is_playback).collect();
    assert_eq!(old.len(), 1, "one playback pump: {pump:?}");
    kill(old[0], libc::SIGKILL);
    wait_until(
        Duration::from_secs(20),
        || {
            mixer.events(Duration::from_millis(50));
            pumps_of_set(n).iter().any(|p| is_playback(p) && !old.contains(p))
        },
        || format!("the mixer never reached a new pump: {:?}", pumps_of_set(n)),
    );
    let master = "Master Playback Volume".to_string();
    let other = Ctl::open(&format!("mix{n}")).unwrap();
    other.write(&master, 216).expect("the new pump takes the master");
    mixer.wait_events(Duration::from_secs(10), |e| {
        e.contains(&CtlEvent::Value(master.clone()))
    });
    other.write(&master, 240).unwrap();
    drop(other);
    drop(mixer);
    wait_until(
        Duration::from_secs(10),
        || pumps_of_set(n).is_empty(),
        || format!("the pump stayed after its mixer closed: {}", log()),
    );
}
