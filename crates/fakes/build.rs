//! Generates the fake CRI runtime's messages and `RuntimeService` server from the vendored
//! `proto/cri/api.proto`, the file the sensor's CRI client is generated from too, so the two
//! cannot disagree on a field. protox compiles the `.proto`, so the build needs no `protoc`.

fn main() {
    let proto = "../../proto/cri/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors =
        protox::compile([proto], ["../../proto/cri"]).unwrap_or_else(|e| panic!("{proto}: {e}"));
    tonic_build::configure()
        .build_client(false)
        .build_transport(false)
        .compile_fds(descriptors)
        .unwrap_or_else(|e| panic!("cannot generate the CRI server: {e}"));
}
