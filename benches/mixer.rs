//! Mixer throughput: one device period (256 stereo frames) of N lanes summed and saturated.
//! Reported as lane samples per second (N * 512 samples per iteration).

use asound_module_pcm_rdmix::dsp::format::Format;
use asound_module_pcm_rdmix::dsp::gain::Ramp;
use asound_module_pcm_rdmix::dsp::mix::Mixer;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const FRAMES: usize = 256;
const CH: usize = 2;

fn lanes(fmt: Format, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|l| {
            let mut x = 0x1234_5678u32.wrapping_add(l as u32);
            (0..FRAMES * CH * fmt.sample_bytes())
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "S16_LE into S16_LE",
            alsa_sys::SND_PCM_FORMAT_S16_LE,
            alsa_sys::SND_PCM_FORMAT_S16_LE,
        ),
        (
            "S32_LE into S32_LE",
            alsa_sys::SND_PCM_FORMAT_S32_LE,
            alsa_sys::SND_PCM_FORMAT_S32_LE,
        ),
        (
            "FLOAT_LE into FLOAT_LE",
            alsa_sys::SND_PCM_FORMAT_FLOAT_LE,
            alsa_sys::SND_PCM_FORMAT_FLOAT_LE,
        ),
        (
            "FLOAT_LE into S16_LE",
            alsa_sys::SND_PCM_FORMAT_FLOAT_LE,
            alsa_sys::SND_PCM_FORMAT_S16_LE,
        ),
    ];
    for (name, lane_fmt, out_fmt) in cases {
        let lane_fmt = Format::lookup(lane_fmt).unwrap();
        let out_fmt = Format::lookup(out_fmt).unwrap();
        let mut g = c.benchmark_group(name);
        for n in [2usize, 8, 32] {
            let data = lanes(lane_fmt, n);
            let mut m = Mixer::new(out_fmt, FRAMES * CH);
            let mut out = vec![0u8; FRAMES * CH * out_fmt.sample_bytes()];
            g.throughput(Throughput::Elements((n * FRAMES * CH) as u64));
            g.bench_with_input(BenchmarkId::new("lanes", n), &n, |b, _| {
                b.iter(|| {
                    m.clear(FRAMES * CH);
                    for l in &data {
                        m.add(lane_fmt, l);
                    }
                    m.finish(&mut out);
                    std::hint::black_box(&out);
                })
            });
        }
        g.finish();
    }
}

/// The same, each lane at a volume other than 0 dB (a lane on its own sum, added at a
/// gain ramped over the period, as a change is), and the master scaled over the sum: what
/// volumes cost beside the plain path above.
fn bench_volume(c: &mut Criterion) {
    for (name, lane_ramp, master_ramp) in [
        (
            "S16_LE into S16_LE, every lane and the master ramping",
            Ramp::over(1.0, 0.5, FRAMES),
            Ramp::over(0.5, 0.25, FRAMES),
        ),
        (
            "S16_LE into S16_LE, every lane and the master turned down, steady",
            Ramp::at(0.5),
            Ramp::at(0.25),
        ),
    ] {
        bench_gain(c, name, lane_ramp, master_ramp);
    }
}

fn bench_gain(c: &mut Criterion, name: &str, lane_ramp: Ramp, master_ramp: Ramp) {
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let mut g = c.benchmark_group(name);
    for n in [2usize, 8, 32] {
        let data = lanes(s16, n);
        let mut m = Mixer::new(s16, FRAMES * CH);
        let mut lane = Mixer::new(s16, FRAMES * CH);
        let mut out = vec![0u8; FRAMES * CH * s16.sample_bytes()];
        g.throughput(Throughput::Elements((n * FRAMES * CH) as u64));
        g.bench_with_input(BenchmarkId::new("lanes", n), &n, |b, _| {
            b.iter(|| {
                m.clear(FRAMES * CH);
                for l in &data {
                    lane.clear(FRAMES * CH);
                    lane.add(s16, l);
                    m.add_mix_gain(&lane, lane_ramp, CH);
                }
                m.scale(master_ramp, CH);
                m.finish(&mut out);
                std::hint::black_box(&out);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_volume);
criterion_main!(benches);
