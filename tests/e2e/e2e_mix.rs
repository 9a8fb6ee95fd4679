//! End to end through real alsa-lib and real programs: `aplay`, `aplay -M` (mmap) and `sox`
//! play known signals at once through rdmix into the paced copy-only test device, and the
//! recording is checked frame by frame.
//!
//! Each stream plays its own bit field (`common::fields`), so each one's start is found in
//! the recording and the whole recording is compared with the exact sum.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::fields::*;
use common::*;

fn require_programs() {
    for p in ["aplay", "sox"] {
        assert!(
            have(p),
            "{p} is required: run the README's test command, which installs alsa-utils and sox"
        );
    }
}

fn start_three(w: &World, names: &[String]) -> Vec<std::process::Child> {
    vec![
        w.spawn("aplay", &["-q", &names[0]]),
        w.spawn("aplay", &["-q", "-M", &names[1]]),
        w.spawn("sox", &["-q", "-D", &names[2], "-t", "alsa", "default"]),
    ]
}

#[test]
fn three_programs_mix_sample_exactly() {
    require_programs();
    let w = World::new("");
    let n = 72_000;
    let names: Vec<String> = (0..3).map(|i| write_stream(&w, i, n)).collect();
    for (i, c) in start_three(&w, &names).into_iter().enumerate() {
        let o = wait_child(c, Duration::from_secs(60), &format!("player {i}"));
        assert!(o.status.success(), "player {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    w.wait_pump_gone(Duration::from_secs(10));
    let rec = read_rec_s16(&w.path("rec.wav"));
    let spans: Vec<(usize, usize)> = (0..3)
        .map(|i| locate(&rec, i).unwrap_or_else(|| panic!("stream {i} missing")))
        .collect();
    for (i, &(start, len)) in spans.iter().enumerate() {
        assert_eq!(len as u64, n, "stream {i} (start {start}) is complete and contiguous");
        assert_eq!(field(rec[start][0], i), 1, "stream {i} starts at its first frame");
    }
    check_exact(&rec, &spans);
    // The device was only ever asked for read/write access.
    let log = std::fs::read_to_string(w.path("card.log")).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("hw_params"))
            && log
                .lines()
                .filter(|l| l.starts_with("hw_params"))
                .all(|l| l.contains("access=RW_INTERLEAVED")),
        "{log}"
    );
}

#[test]
fn killing_one_player_leaves_the_others_exact() {
    require_programs();
    let w = World::new("");
    let n: u64 = 4 * 48_000;
    let names: Vec<String> = (0..3).map(|i| write_stream(&w, i, n)).collect();
    let mut kids = start_three(&w, &names);
    // Kill the mmap player once half of its stream has been recorded.
    let rec_path = w.path("rec.wav");
    wait_until(
        Duration::from_secs(30),
        || {
            let rec = read_rec_s16(&rec_path);
            locate(&rec, 1).is_some_and(|(_, len)| len as u64 >= n / 2)
        },
        || format!("stream 1 never got halfway; pump log: {}", w.pump_log()),
    );
    kids[1].kill().unwrap();
    let victim = kids.remove(1);
    let _ = wait_child(victim, Duration::from_secs(5), "killed player");
    for (i, c) in kids.into_iter().enumerate() {
        let o = wait_child(c, Duration::from_secs(60), &format!("survivor {i}"));
        assert!(
            o.status.success(),
            "survivor {i}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    w.wait_pump_gone(Duration::from_secs(10));
    let rec = read_rec_s16(&rec_path);
    let spans: Vec<(usize, usize)> = (0..3).map(|i| locate(&rec, i).unwrap()).collect();
    assert_eq!(spans[0].1 as u64, n, "aplay's stream is complete");
    assert_eq!(spans[2].1 as u64, n, "sox's stream is complete");
    assert!(
        (spans[1].1 as u64) >= n / 2 && (spans[1].1 as u64) < n,
        "the killed stream stops part-way: {spans:?}"
    );
    // Nothing of the killed stream appears after it stopped.
    assert!(rec[spans[1].0 + spans[1].1..].iter().all(|f| field(f[0], 1) == 0));
    check_exact(&rec, &spans);
}

fn shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn thirty_two_clients_share_one_pump_and_every_frame_is_heard() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let shm_before = shm_entries();
    let n = 48_000usize;
    write_wav_s16(&w.path("one.wav"), 48000, &vec![[1, -1]; n]);
    let kids: Vec<_> = (0..32).map(|_| w.spawn("aplay", &["-q", "one.wav"])).collect();
    for (i, c) in kids.into_iter().enumerate() {
        let o = wait_child(c, Duration::from_secs(120), &format!("client {i}"));
        assert!(o.status.success(), "client {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    w.wait_pump_gone(Duration::from_secs(10));
    let rec = read_rec_s16(&w.path("rec.wav"));
    let left: i64 = rec.iter().map(|f| f[0] as i64).sum();
    let right: i64 = rec.iter().map(|f| f[1] as i64).sum();
    assert_eq!(
        (left, right),
        (32 * n as i64, -32 * n as i64),
        "each client's every frame mixed exactly once"
    );
    let log = w.pump_log();
    assert_eq!(log.matches(" took lane ").count(), 32, "{log}");
    let pumps: std::collections::HashSet<&str> = log.lines().filter_map(|l| l.split(']').next()).collect();
    assert_eq!(pumps.len(), 1, "one pump served all 32: {pumps:?}");
    // Nothing was left in /dev/shm (the segment is a memfd) or anywhere else. The tests'
    // own worlds may live there too, and other tests make them meanwhile.
    let new: Vec<String> = shm_entries()
        .into_iter()
        .filter(|e| !shm_before.contains(e) && !e.starts_with("rdmix-e2e-"))
        .collect();
    assert!(new.iter().all(|e| !e.contains("rdmix")), "{new:?}");
}

#[test]
fn a_slave_underrun_is_recovered_and_the_stream_stays_exact() {
    assert!(have("aplay"), "aplay is required");
    let w = World::new("");
    let n: u64 = 3 * 48_000;
    let name = write_stream(&w, 0, n);
    let player = w.spawn("aplay", &["-q", &name]);
    let rec_path = w.path("rec.wav");
    wait_until(
        Duration::from_secs(20),
        || locate(&read_rec_s16(&rec_path), 0).is_some_and(|(_, len)| len > 48_000),
        || "stream never started".into(),
    );
    // Freeze the pump long enough for the device to run dry (its whole buffer, which the
    // pump fills ahead, and more), then let it go on.
    let pump = w.pumps()[0];
    let buffer: u64 = w
        .pump_log()
        .lines()
        .find_map(|l| l.split(" / buffer ").nth(1)?.split(' ').next()?.parse().ok())
        .expect("the pump logs its buffer");
    let freeze = Duration::from_millis(buffer * 1000 / 48_000 + 300);
    kill(pump, libc::SIGSTOP);
    let frozen_at = std::time::Instant::now();
    wait_until(Duration::from_secs(5), || frozen_at.elapsed() > freeze, String::new);
    kill(pump, libc::SIGCONT);
    let o = wait_child(player, Duration::from_secs(30), "player");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    w.wait_pump_gone(Duration::from_secs(10));
    let rec = read_rec_s16(&rec_path);
    let span = locate(&rec, 0).unwrap();
    assert_eq!(span.1 as u64, n, "the whole stream, once, in order");
    check_exact(&rec, &[span]);
    let xruns: u32 = w
        .pump_log()
        .lines()
        .find_map(|l| l.split(" periods, ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        xruns >= 1,
        "the device underran and the pump recovered it: {}",
        w.pump_log()
    );
}
