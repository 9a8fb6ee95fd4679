//! Lists the rdmix pumps and their clients; see `rdmix::status`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(asound_module_pcm_rdmix::status::main(&args));
}
