//! rsyslog (Debian's `rsyslog` and `rsyslog-gnutls`) as a child process on 127.0.0.1, listening
//! on UDP, TCP and TLS (a certificate made for the run) and writing every message it parsed to a
//! file, one line each: `facility|severity|time|host|app|msgid|structured data|message`.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rsyslog {
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// One message as rsyslog parsed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub facility: u8,
    pub severity: u8,
    pub time: String,
    pub host: String,
    pub app: String,
    pub msgid: String,
    pub structured_data: String,
    pub message: String,
}

/// `RSYSLOGD_BIN`, or Debian's `/usr/sbin/rsyslogd`.
fn binary() -> String {
    std::env::var("RSYSLOGD_BIN").unwrap_or_else(|_| "/usr/sbin/rsyslogd".into())
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn free_udp() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn config(dir: &Path, udp: u16, tcp: u16, tls: u16) -> String {
    let d = dir.display();
    format!(
        r#"global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/cert.pem"
       defaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imtcp" address="127.0.0.1" port="{tls}" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="fields" type="string" string="%syslogfacility%|%syslogseverity%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%msgid%|%structured-data%|%msg:::drop-last-lf%\n")
*.* action(type="omfile" file="{d}/messages.log" template="fields" flushOnTXEnd="on")
"#
    )
}

impl Rsyslog {
    /// Starts rsyslog with a fresh certificate for `localhost` (its CA is [`Rsyslog::ca_file`]).
    pub fn start() -> Rsyslog {
        let dir = std::env::temp_dir().join(format!(
            "peregrine-rsyslog-{}-{}",
            std::process::id(),
            free_tcp()
        ));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        crate::certs::write(&dir);
        let mut r = Rsyslog {
            udp: free_udp(),
            tcp: free_tcp(),
            tls: free_tcp(),
            dir,
            child: None,
        };
        r.restart();
        r
    }

    /// Starts it (again, after [`Rsyslog::kill`]) on the same ports and waits until it listens.
    pub fn restart(&mut self) {
        std::fs::write(
            self.dir.join("rsyslog.conf"),
            config(&self.dir, self.udp, self.tcp, self.tls),
        )
        .expect("the config is written");
        let child = Command::new(binary())
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): install Debian's rsyslog and rsyslog-gnutls (scripts/setup.sh test does)", binary()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [self.tcp, self.tls] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "rsyslog never listened on {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Every message written so far.
    pub fn messages(&self) -> Vec<Parsed> {
        let text = std::fs::read_to_string(self.dir.join("messages.log")).unwrap_or_default();
        text.lines().filter_map(parse).collect()
    }

    /// Waits until `n` messages are written (or panics after `timeout`).
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Parsed> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} messages after {timeout:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn parse(line: &str) -> Option<Parsed> {
    let f: Vec<&str> = line.splitn(8, '|').collect();
    let [facility, severity, time, host, app, msgid, sd, message] = f.as_slice() else {
        return None;
    };
    Some(Parsed {
        facility: facility.parse().ok()?,
        severity: severity.parse().ok()?,
        time: time.to_string(),
        host: host.to_string(),
        app: app.to_string(),
        msgid: msgid.to_string(),
        structured_data: sd.to_string(),
        message: message.trim_start().to_string(),
    })
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
