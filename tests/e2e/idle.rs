//! An idle pump costs nothing: while a client is open but nobody plays, the pump stops the
//! device (after a buffer of silence, so nothing audible is cut) and sleeps with no timer.
//! A stream that starts later restarts the device, led in by silence: the recording holds
//! every stream whole and exact, and nothing stale in between.
//!
//! The cost itself (wake-ups and CPU while idle) is measured by `scripts/bench/peers.sh`,
//! not here: these tests check behaviour, never timing.

#[path = "../common/mod.rs"]
mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::fields::*;
use common::*;

/// An `aplay` that has opened and prepared rdmix and waits for data on its stdin: a client
/// that holds the pump without playing.
fn holder(w: &World) -> Child {
    w.cmd("aplay")
        .args(["-q", "-t", "raw", "-f", "S16_LE", "-r", "48000", "-c", "2", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("aplay")
}

fn card_log(w: &World) -> String {
    std::fs::read_to_string(w.path("card.log")).unwrap_or_default()
}

fn count(w: &World, what: &str) -> usize {
    card_log(w).lines().filter(|l| l.starts_with(what)).count()
}

#[test]
fn the_device_stops_while_nobody_plays_and_restarts_exactly() {
    assert!(have("aplay"), "aplay is required: run the README's test command");
    let w = World::new("");
    let hold = holder(&w);
    w.wait_lanes(1, Duration::from_secs(10));
    let n = 24_000;
    let names: Vec<String> = (0..2).map(|i| write_stream(&w, i, n)).collect();

    for (i, name) in names.iter().enumerate() {
        let o = wait_child(w.spawn("aplay", &["-q", name]), Duration::from_secs(60), "aplay");
        assert!(o.status.success(), "stream {i}: {}", String::from_utf8_lossy(&o.stderr));
        // The holder is still open, so the pump stays; it stops the device on its own.
        wait_until(
            Duration::from_secs(10),
            || count(&w, "stop") > i,
            || format!("the device was never stopped after stream {i}: {}", card_log(&w)),
        );
        assert_eq!(w.pumps().len(), 1, "one pump throughout, kept by the holder");
        // What a user sees: the device idle, the holder's lane still there.
        let st = w.run(&build_dir().join("rdmix-status").display().to_string(), &["--json"]);
        let json = String::from_utf8_lossy(&st.stdout);
        assert!(json.contains("\"device\":\"idle\""), "rdmix-status: {json}");
        assert!(json.contains("\"program\":\"aplay\""), "rdmix-status: {json}");
    }
    assert_eq!(count(&w, "start"), 2, "one device start per stream: {}", card_log(&w));
    assert!(
        w.pump_log().contains("sleeping on the slave's 1 poll descriptor"),
        "the paced device's descriptor paces the pump: {}",
        w.pump_log()
    );

    // The holder goes (EOF on its stdin), and with it the pump.
    let mut hold = hold;
    drop(hold.stdin.take());
    let o = wait_child(hold, Duration::from_secs(30), "holder");
    assert!(o.status.success(), "holder: {}", String::from_utf8_lossy(&o.stderr));
    w.wait_pump_gone(Duration::from_secs(10));

    let rec = read_rec_s16(&w.path("rec.wav"));
    let spans: Vec<(usize, usize)> = (0..2)
        .map(|i| locate(&rec, i).unwrap_or_else(|| panic!("stream {i} missing")))
        .collect();
    for (i, &(start, len)) in spans.iter().enumerate() {
        assert_eq!(len as u64, n, "stream {i} is complete and contiguous");
        assert_eq!(field(rec[start][0], i), 1, "stream {i} starts at its first frame");
    }
    // Every frame is the exact mix: silence wherever no stream plays, so nothing stale was
    // replayed around the stop and the restart.
    check_exact(&rec, &spans);
    // The device was stopped only once the first stream had played out: what the stop
    // dropped (the test device logs it) is all past its last frame.
    let (recorded, dropped): (usize, usize) = card_log(&w)
        .lines()
        .find_map(|l| {
            let l = l.strip_prefix("stop ")?;
            let get = |k: &str| l.split_whitespace().find_map(|kv| kv.strip_prefix(k)?.parse().ok());
            Some((get("recorded=")?, get("dropped=")?))
        })
        .expect("the device's first stop in its log");
    let end = spans[0].0 + spans[0].1;
    assert!(
        end <= recorded - dropped,
        "the first stream ends at frame {end}, but the stop dropped frames {} to {recorded}: it was cut",
        recorded - dropped
    );
}
