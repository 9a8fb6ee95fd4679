//! Generates bindings for alsa-lib's ioplug and ctl_ext APIs, which `asoundlib.h` (and so alsa-sys) leaves out.
//! Everything the ioplug items refer to comes from alsa-sys, so the two never define a type twice.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=include/rdmix_alsa.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let bindings = bindgen::Builder::default()
        .header("include/rdmix_alsa.h")
        .allowlist_recursively(false)
        .allowlist_type("snd_pcm_ioplug(_callback)?(_t)?")
        .allowlist_function("snd_pcm_ioplug_.*")
        .allowlist_var("SND_PCM_IOPLUG_.*")
        .allowlist_type("snd_ctl_ext(_callback|_key|_tlv_rw|_access)?(_t)?")
        .allowlist_type("snd_ctl_ext__bindgen_ty_1")
        .allowlist_function("snd_ctl_ext_(create|delete)")
        .allowlist_var("SND_CTL_EXT_VERSION.*")
        .allowlist_var("snd_lib_error")
        .raw_line("use alsa_sys::*;")
        .raw_line("use libc::pollfd;")
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen over include/rdmix_alsa.h failed: is libclang-dev installed?");
    bindings
        .write_to_file(out.join("ioplug.rs"))
        .expect("writing ioplug.rs");
}
