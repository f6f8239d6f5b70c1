//! User and group names from `/etc/passwd` and `/etc/group`, cached and re-read when an unknown
//! id shows up (at most every few seconds).
//!
//! In a container the sensor's own `/etc` is the image's: as Falco does, `HOST_ROOT` names where
//! the host's root is mounted (deploy/kubernetes mounts the host's `/etc` read-only at
//! `/host/etc` and sets `HOST_ROOT=/host`), and the files are read below it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub home: String,
    pub shell: String,
}

pub struct Users {
    users: HashMap<u32, User>,
    groups: HashMap<u32, String>,
    loaded: Instant,
}

impl Users {
    pub fn load() -> Self {
        let mut u = Users {
            users: HashMap::new(),
            groups: HashMap::new(),
            loaded: Instant::now(),
        };
        u.reload();
        u
    }

    fn reload(&mut self) {
        let root = std::env::var_os("HOST_ROOT").unwrap_or_else(|| "/".into());
        let read = |file: &str| {
            let path = std::path::Path::new(&root).join(file);
            std::fs::read_to_string(path).unwrap_or_default()
        };
        self.users = parse_passwd(&read("etc/passwd"));
        self.groups = parse_group(&read("etc/group"));
        self.loaded = Instant::now();
    }

    fn refresh_if_stale(&mut self) {
        if self.loaded.elapsed() > REFRESH {
            self.reload();
        }
    }

    /// Makes sure these ids were looked up (re-reading the files if one is new), so that the
    /// read-only lookups below see them.
    pub fn ensure(&mut self, uids: &[u32], gid: u32) {
        if uids.iter().any(|u| !self.users.contains_key(u)) || !self.groups.contains_key(&gid) {
            self.refresh_if_stale();
        }
    }

    pub fn peek_user(&self, uid: u32) -> Option<&User> {
        self.users.get(&uid)
    }

    pub fn peek_group(&self, gid: u32) -> Option<&str> {
        self.groups.get(&gid).map(String::as_str)
    }
}

fn parse_passwd(text: &str) -> HashMap<u32, User> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let uid = f.get(2)?.parse().ok()?;
            Some((
                uid,
                User {
                    name: f[0].to_string(),
                    home: f.get(5)?.to_string(),
                    shell: f.get(6)?.to_string(),
                },
            ))
        })
        .collect()
}

fn parse_group(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f[0].to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_files() {
        let p = parse_passwd("root:x:0:0:root:/root:/bin/bash\nbad line\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n");
        assert_eq!(p[&0].name, "root");
        assert_eq!(p[&65534].shell, "/usr/sbin/nologin");
        let g = parse_group("root:x:0:\nadm:x:4:syslog\n");
        assert_eq!(g[&4], "adm");
    }
}
