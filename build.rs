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
    if !native_linux_gnu() {
        return;
    }
    if probe_links_and_runs() {
        println!("cargo:rustc-link-arg-bins={PACK_RELOCATIONS}");
    } else {
        println!("cargo:warning=linking without packed relocations (DT_RELR): idle RSS is ~0.7 MiB higher");
    }
}

/// Whether this build is for Linux with glibc, on the machine it runs on.
fn native_linux_gnu() -> bool {
    let is = |key: &str, value: &str| env::var(key).is_ok_and(|v| v == value);
    let native = env::var("HOST").is_ok_and(|host| env::var("TARGET").is_ok_and(|t| t == host));
    native && is("CARGO_CFG_TARGET_OS", "linux") && is("CARGO_CFG_TARGET_ENV", "gnu")
}

/// Whether a program linked with [`PACK_RELOCATIONS`] links and runs here.
fn probe_links_and_runs() -> bool {
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return false;
    };
    let source = out_dir.join("relr_probe.rs");
    let program = out_dir.join("relr_probe");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut link = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    link.arg(format!("-Clink-arg={PACK_RELOCATIONS}"))
        .arg("-o")
        .arg(&program)
        .arg(&source);
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        link.arg(format!("-Clinker={linker}"));
    }
    let succeeds = |command: &mut Command| command.output().is_ok_and(|o| o.status.success());
    succeeds(&mut link) && succeeds(&mut Command::new(&program))
}
