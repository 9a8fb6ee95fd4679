//! Per-lane conversion cost: one 256-frame device period (48 kHz stereo S16 device) produced
//! from one stereo S16 client at 44.1, 22.05 and 96 kHz, against a matching 48 kHz client
//! (the plain integer path). Time per period x 187.5 periods/s = CPU per second of audio.

use asound_module_pcm_rdmix::dsp::chmap::{matrix, standard_map};
use asound_module_pcm_rdmix::dsp::convert::Converter;
use asound_module_pcm_rdmix::dsp::format::Format;
use asound_module_pcm_rdmix::dsp::mix::Mixer;
use criterion::{Criterion, criterion_group, criterion_main};

const PERIOD: usize = 256;

fn bench(c: &mut Criterion) {
    let s16 = Format::lookup(alsa_sys::SND_PCM_FORMAT_S16_LE).unwrap();
    let map = matrix(&standard_map(2), &standard_map(2));
    let src: Vec<u8> = (0..PERIOD * 8 * 2)
        .flat_map(|n| (((n as f64 * 0.05).sin() * 12000.0) as i16).to_le_bytes())
        .collect();
    let mut g = c.benchmark_group("one stereo client, one 256-frame period");
    for rate in [44100u32, 22050, 96000] {
        let mut conv = Converter::new(s16, rate, 2, 48000, PERIOD, map.clone()).unwrap();
        let mut mix = Mixer::new(s16, PERIOD * 2);
        g.bench_function(format!("{} kHz -> 48 kHz", rate as f64 / 1000.0), |b| {
            b.iter(|| {
                mix.clear(PERIOD * 2);
                let need = conv.input_frames_next();
                conv.process(&src[..need * 4], &mut mix);
                std::hint::black_box(&mix);
            })
        });
    }
    let mut mix = Mixer::new(s16, PERIOD * 2);
    g.bench_function("48 kHz, no conversion", |b| {
        b.iter(|| {
            mix.clear(PERIOD * 2);
            mix.add(s16, &src[..PERIOD * 4]);
            std::hint::black_box(&mix);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
