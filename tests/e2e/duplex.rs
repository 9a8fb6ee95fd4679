//! Full duplex through one rdmix PCM: a program plays and records through the same
//! definition at once (two PCMs, as alsa-lib's `test/latency.c` opens them), into the test
//! device wired as a loop-back cable (`loop`). A latency.c-style loop reads a period and
//! writes a period; a click written now comes back some frames later: the round trip,
//! recorded as a MEASURE line (BENCHMARKS.md has the figure). The assertions are what the
//! loop must do: every click comes back, once, bit-exact, at the same delay each time.
// snd_pcm_sframes_t is 32 bits on 32-bit targets: the casts to i64 are not no-ops there.
#![allow(clippy::unnecessary_cast)]

#[path = "../common/mod.rs"]
mod common;

use common::alsa::{Params, Pcm};

const PERIOD: u64 = 240;
const CLICK: i16 = 20000;
/// Periods the program keeps queued for playback.
const QUEUED: u64 = 4;

#[test]
fn a_click_played_comes_back_through_the_capture_side() {
    // `pcm.duplex` is rdmix over `pcm.cable`, the test device wired as a loop-back cable
    // (see common::alsa::world).
    let p = Params {
        period: PERIOD,
        buffer: PERIOD * 4,
        ..Params::default()
    };
    let cap = Pcm::open_capture("duplex", false).expect("open for capture");
    cap.set_params(p).unwrap();
    cap.set_sw(1, Some(PERIOD * 4), PERIOD).unwrap();
    let play = Pcm::open("duplex", false).expect("open for playback");
    play.set_params(Params {
        buffer: PERIOD * 8,
        ..p
    })
    .unwrap();
    // Start with four periods queued (20 ms: room for a late wake-up on a loaded machine);
    // a late period would be silence, never a stop.
    play.set_sw(QUEUED * PERIOD, None, PERIOD).unwrap();
    let silence = vec![0u8; PERIOD as usize * 4];
    let mut click = silence.clone();
    click[..2].copy_from_slice(&CLICK.to_le_bytes());
    click[2..4].copy_from_slice(&CLICK.to_le_bytes());
    for _ in 0..QUEUED {
        play.write_all(&silence, 4);
    }
    let (mut read, mut sent_at) = (0u64, Vec::new());
    let mut heard = Vec::new();
    let clicks = 8;
    // Each period read is answered by a period written: the loop of latency.c.
    for i in 0..clicks * 25 + 100 {
        let got = cap.read_exact(PERIOD, 4);
        for (k, f) in got.chunks_exact(4).enumerate() {
            let l = i16::from_le_bytes([f[0], f[1]]);
            if l != 0 {
                assert_eq!(l, CLICK, "the click comes back bit-exact");
                heard.push(read + k as u64);
            }
        }
        read += PERIOD;
        let is_click = i % 25 == 10 && sent_at.len() < clicks as usize;
        if is_click {
            sent_at.push(read);
        }
        play.write_all(if is_click { &click } else { &silence }, 4);
    }
    assert_eq!(
        heard.len(),
        sent_at.len(),
        "every click once: sent {sent_at:?}, heard {heard:?}"
    );
    let trips: Vec<u64> = sent_at.iter().zip(&heard).map(|(s, h)| h - s).collect();
    let (lo, hi) = (*trips.iter().min().unwrap(), *trips.iter().max().unwrap());
    eprintln!(
        "MEASURE full duplex round trip (read a period, write a period, {QUEUED} periods queued; \
         device period {PERIOD}, 4 periods): {:.1}..{:.1} ms over {} clicks",
        lo as f64 / 48.0,
        hi as f64 / 48.0,
        trips.len()
    );
    assert!(hi - lo <= PERIOD, "a steady loop: round trips {trips:?}");
}
