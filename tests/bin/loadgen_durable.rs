//! The durable floor: the bare hyper server plus the least that any server answering "200 only
//! after the alert is on disk" must do, and nothing else (no parsing, no checks, no record
//! format, no metrics).
//!
//! Why: the gateway's ingest goal is a ratio against a bare server that answers at once. A
//! server that answers only after an `fdatasync` pays for handing each request to the one thread
//! that writes and syncs, for waiting for that sync, and for the sync itself, whatever else it
//! does. Measured in the same run, this floor says how much of the gap to the bare server is
//! durability's and how much is the gateway's own.
//!
//! The design is the spool's (one writer thread, group commit, zeros written ahead so that an
//! `fdatasync` commits no new file size), without the spool's wait for announced appends.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use tokio::sync::{mpsc, oneshot};

use super::serve_http;

/// A body waiting for its group's fsync, and whom to tell.
type Waiting = (Bytes, oneshot::Sender<()>);

/// Zeros are written (and synced) this far ahead of the log's end.
const AHEAD: u64 = 1 << 20;
/// The log wraps to its start past this, over blocks it already has: bounded disk use.
const WRAP: u64 = 256 << 20;

/// `serve-durable DIR`: serves on 127.0.0.1, prints the address, appends every body to `DIR/log`
/// and answers 200 once it is durable.
pub fn serve(dir: PathBuf) {
    let (tx, rx) = mpsc::channel::<Waiting>(4096);
    let file = File::create(dir.join("log")).expect("create the durable floor's log");
    std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || write_groups(&file, rx))
        .unwrap();
    serve_http(move |req| {
        let tx = tx.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let (done, durable) = oneshot::channel();
            tx.send((body, done)).await.unwrap();
            durable.await.unwrap();
            Response::new(Full::new(Bytes::new()))
        }
    });
}

/// The writer thread: takes everything queued, writes it with one `pwrite` (each body behind its
/// length), makes it durable with one `fdatasync`, then answers the group.
fn write_groups(file: &File, mut rx: mpsc::Receiver<Waiting>) {
    let (mut len, mut prepared) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(1 << 20);
    while let Some(first) = rx.blocking_recv() {
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            group.push(next);
        }
        buf.clear();
        for (body, _) in &group {
            buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
            buf.extend_from_slice(body);
        }
        if len + buf.len() as u64 > WRAP {
            len = 0;
        }
        if prepared < len + AHEAD / 2 {
            file.write_all_at(&vec![0; AHEAD as usize], prepared)
                .and_then(|()| file.sync_data())
                .expect("write zeros ahead");
            prepared += AHEAD;
        }
        file.write_all_at(&buf, len)
            .and_then(|()| file.sync_data())
            .expect("write and sync a group");
        len += buf.len() as u64;
        prepared = prepared.max(len);
        for (_, done) in group {
            let _ = done.send(());
        }
    }
}
