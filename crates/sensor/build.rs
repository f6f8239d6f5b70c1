//! Builds the kernel side: `vmlinux.h` from the running kernel's BTF (bpftool), then
//! `bpf/sensor.bpf.c` with `clang -O2 -g -target bpf` into `$OUT_DIR/sensor.bpf.o`, which the
//! sensor embeds. A missing tool is a clear error naming the Debian package (`make` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = Path::new("bpf");
    println!("cargo:rerun-if-changed=bpf/sensor.bpf.c");
    println!("cargo:rerun-if-changed=bpf/events.h");
    println!("cargo:rerun-if-env-changed=PEREGRINE_VMLINUX_H");

    let vmlinux = match std::env::var_os("PEREGRINE_VMLINUX_H") {
        Some(path) => PathBuf::from(path),
        None => {
            let btf = Path::new("/sys/kernel/btf/vmlinux");
            if !btf.exists() {
                fail("the kernel exposes no BTF at /sys/kernel/btf/vmlinux; set PEREGRINE_VMLINUX_H to a vmlinux.h for the target kernel");
            }
            let header = out.join("vmlinux.h");
            let dump = Command::new("bpftool")
                .args(["btf", "dump", "file"])
                .arg(btf)
                .args(["format", "c"])
                .output()
                .unwrap_or_else(|e| fail(&format!("cannot run bpftool ({e}); install the Debian package 'bpftool' (make does)")));
            if !dump.status.success() {
                fail(&format!(
                    "bpftool btf dump failed: {}",
                    String::from_utf8_lossy(&dump.stderr)
                ));
            }
            std::fs::write(&header, dump.stdout).expect("write vmlinux.h");
            header
        }
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
        .unwrap_or_else(|e| fail(&format!("cannot run clang ({e}); install the Debian packages 'clang' and 'libbpf-dev' (make does)")));
    if !status.success() {
        fail("clang could not compile bpf/sensor.bpf.c (see the errors above; the BPF headers come from Debian's 'libbpf-dev')");
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: peregrine-sensor kernel side: {message}");
    std::process::exit(1);
}
