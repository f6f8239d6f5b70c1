//! A real SMTP server: `peers/smtp_peer.py`, aiosmtpd (Debian's `python3-aiosmtpd`, run by
//! Debian's `/usr/bin/python3`) on 127.0.0.1 with STARTTLS required (a certificate made for the
//! run), AUTH for one user, and a Maildir the tests read mails from.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "peregrine";
pub const PASSWORD: &str = "smtp-s3cret";

pub struct SmtpServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<(Child, ChildStdin)>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("peregrine-smtp-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        crate::certs::write(&dir);
        let mut s = SmtpServer {
            port,
            dir,
            child: None,
        };
        s.restart();
        s
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Starts it (again, after [`SmtpServer::kill`]) on the same port and Maildir.
    pub fn restart(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/smtp_peer.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.dir.join("maildir"))
            .arg(self.dir.join("cert.pem"))
            .arg(self.dir.join("key.pem"))
            .args([USER, PASSWORD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/python3 runs");
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        assert!(
            read.is_ok() && line.trim() == "ready",
            "the SMTP peer did not start: install Debian's python3-aiosmtpd (scripts/setup.sh test does)"
        );
        let stdin = child.stdin.take().expect("piped");
        self.child = Some((child, stdin));
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some((mut c, _)) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every mail stored so far, as raw text, oldest first.
    pub fn mails(&self) -> Vec<String> {
        let new = self.dir.join("maildir/new");
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&new)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| {
                        (
                            e.metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH),
                            e.path(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|(_, p)| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits until `n` mails are stored (or panics after `timeout`).
    pub fn wait_mails(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.mails();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails after {timeout:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
