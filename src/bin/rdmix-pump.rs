//! The device pump executable; see `rdmix::pump::server`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(asound_module_pcm_rdmix::pump::server::main(&args));
}
