//! Link settings for the `clnrest` binary.
//!
//! On Linux with glibc the binary is linked with packed relative relocations
//! (`-z pack-relative-relocs`, DT_RELR). A position-independent Rust binary has tens of
//! thousands of relative relocations (vtables, string tables); stored the usual way they take
//! ~600 KiB of `.rela.dyn` that the loader reads at every start and that then stay resident.
//! Packed, they take a few KiB: idle RSS is ~0.7 MiB lower (docs/performance.md), and the
//! binary stays position-independent.
//!
//! The option needs binutils 2.38+ (or lld) and glibc 2.36+ to run the result, so it is used
//! only when a probe program linked with it runs on the build machine; cross builds go without.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const PACK_RELOCATIONS: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if packed_relocations_work() {
        println!("cargo:rustc-link-arg-bins={PACK_RELOCATIONS}");
    } else {
        println!("cargo:warning=linking without packed relocations (DT_RELR): idle RSS is ~0.7 MiB higher");
    }
}

/// Whether a program linked with [`PACK_RELOCATIONS`] for this target links and runs here.
fn packed_relocations_work() -> bool {
    let is = |key: &str, value: &str| env::var(key).is_ok_and(|v| v == value);
    let native = env::var("HOST")
        .ok()
        .is_some_and(|h| env::var("TARGET").ok() == Some(h));
    if !(is("CARGO_CFG_TARGET_OS", "linux") && is("CARGO_CFG_TARGET_ENV", "gnu") && native) {
        return false;
    }
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out_dir.join("relr_probe.rs");
    let program = out_dir.join("relr_probe");
    if std::fs::write(
        &source,
        "fn main() { println!(\"{}\", std::env::args().count()); }\n",
    )
    .is_err()
    {
        return false;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let mut link = Command::new(rustc);
    link.arg("-C")
        .arg(format!("link-arg={PACK_RELOCATIONS}"))
        .arg("-o")
        .arg(&program)
        .arg(&source);
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        link.arg("-C").arg({
            let mut arg = std::ffi::OsString::from("linker=");
            arg.push(linker);
            arg
        });
    }
    let linked = link.output().is_ok_and(|o| o.status.success());
    linked
        && Command::new(&program)
            .output()
            .is_ok_and(|o| o.status.success())
}
