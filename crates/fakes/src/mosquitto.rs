//! `mosquitto` (Debian's) as a child process on 127.0.0.1, anonymous and in memory: a real MQTT
//! broker to publish to and subscribe from, which refuses publishes under `falco/forbidden/`.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn binary() -> String {
    std::env::var("MOSQUITTO_BIN").unwrap_or_else(|_| "/usr/sbin/mosquitto".into())
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("peregrine-mosquitto-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        // Anyone may publish anywhere except under `falco/forbidden/`, so a test can see the
        // broker refuse one message (MQTT 5 says so in the PUBACK's reason code).
        let acl = dir.join("acl");
        std::fs::write(&acl, "topic deny falco/forbidden/#\ntopic readwrite #\n")
            .expect("the ACL is written");
        let conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_packet_size 2000000\nacl_file {}\n",
            acl.display()
        );
        std::fs::write(dir.join("mosquitto.conf"), conf).expect("the config is written");
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
        };
        m.restart();
        m
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, after [`Mosquitto::kill`]) on the same port.
    pub fn restart(&mut self) {
        let child = Command::new(binary())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): install Debian's mosquitto (scripts/setup.sh test does)", binary()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto never listened on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
