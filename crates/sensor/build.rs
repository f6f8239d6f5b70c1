//! Builds what the sensor embeds besides its Rust:
//!
//! - the kernel side: `vmlinux.h` from the running kernel's BTF (bpftool), then
//!   `bpf/sensor.bpf.c` with `clang -O2 -g -target bpf` into `$OUT_DIR/sensor.bpf.o`. A missing
//!   tool is a clear error naming the Debian package (`make` installs it).
//! - the Kubernetes CRI client: `$OUT_DIR/runtime.v1.rs` from the vendored
//!   `proto/cri/api.proto`, the file the fake CRI runtime is generated from too.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    kernel_side(&out);
    cri_client();
}

/// `$OUT_DIR/sensor.bpf.o`, compiled against the kernel's types.
fn kernel_side(out: &Path) {
    let src = Path::new("bpf");
    println!("cargo:rerun-if-changed=bpf/sensor.bpf.c");
    println!("cargo:rerun-if-changed=bpf/events.h");
    println!("cargo:rerun-if-env-changed=PEREGRINE_VMLINUX_H");

    let vmlinux = match std::env::var_os("PEREGRINE_VMLINUX_H") {
        Some(path) => PathBuf::from(path),
        None => vmlinux_h(out),
    };
    let include = vmlinux.parent().expect("vmlinux.h has a directory");

    let object = out.join("sensor.bpf.o");
    let status = Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror"])
        .arg("-I")
        .arg(include)
        .arg("-I")
        .arg(src)
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(src.join("sensor.bpf.c"))
        .arg("-o")
        .arg(&object)
        .status()
        .unwrap_or_else(|e| fail("kernel side", &format!("cannot run clang ({e}); install the Debian packages 'clang' and 'libbpf-dev' (make does)")));
    if !status.success() {
        fail("kernel side", "clang could not compile bpf/sensor.bpf.c (see the errors above; the BPF headers come from Debian's 'libbpf-dev')");
    }
}

/// `bpftool` from PATH, else Debian's `/usr/sbin/bpftool`: a user's PATH there has no sbin, and
/// dumping the kernel's BTF needs no privilege.
fn bpftool() -> PathBuf {
    let in_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("bpftool").is_file()))
        .unwrap_or(false);
    match ["/usr/sbin/bpftool", "/sbin/bpftool"]
        .iter()
        .find(|p| Path::new(p).is_file())
    {
        Some(sbin) if !in_path => PathBuf::from(sbin),
        _ => PathBuf::from("bpftool"),
    }
}

/// `vmlinux.h` dumped from the running kernel's BTF into `out`.
fn vmlinux_h(out: &Path) -> PathBuf {
    let btf = Path::new("/sys/kernel/btf/vmlinux");
    if !btf.exists() {
        fail("kernel side", "the kernel exposes no BTF at /sys/kernel/btf/vmlinux; set PEREGRINE_VMLINUX_H to a vmlinux.h for the target kernel");
    }
    let header = out.join("vmlinux.h");
    let dump = Command::new(bpftool())
        .args(["btf", "dump", "file"])
        .arg(btf)
        .args(["format", "c"])
        .output()
        .unwrap_or_else(|e| {
            fail(
                "kernel side",
                &format!(
                    "cannot run bpftool ({e}); install the Debian package 'bpftool' (make does)"
                ),
            )
        });
    if !dump.status.success() {
        fail(
            "kernel side",
            &format!(
                "bpftool btf dump failed: {}",
                String::from_utf8_lossy(&dump.stderr)
            ),
        );
    }
    std::fs::write(&header, dump.stdout).expect("write vmlinux.h");
    header
}

/// The Rust of the CRI's messages and `RuntimeService` client, from the `.proto` the fake CRI
/// runtime (crates/fakes/build.rs) is generated from too, so the two cannot disagree on a field.
/// protox compiles the `.proto`, so the build needs no `protoc`.
fn cri_client() {
    let proto = "../../proto/cri/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../../proto/cri"])
        .unwrap_or_else(|e| fail("CRI client", &format!("{proto}: {e}")));
    tonic_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_fds(descriptors)
        .unwrap_or_else(|e| fail("CRI client", &format!("cannot generate it: {e}")));
}

/// Stops the build with a message that says which part of it failed.
fn fail(part: &str, message: &str) -> ! {
    eprintln!("error: peregrine-sensor {part}: {message}");
    std::process::exit(1);
}
