//! Reloading the configuration of a running gateway (SIGHUP).
//!
//! The file is read and validated whole first; on any problem the running configuration stays
//! as it is and the problems are logged. Otherwise the differences are applied: outputs added,
//! removed or changed (an output keeps its name, so its cursor and backlog), routes, custom
//! fields, the listener's limits, token and TLS certificate. `listen` and `spool` cannot move
//! under a running gateway: a file that changes them is refused as a whole, so the running
//! configuration always is the file whose hash `peregrine_config_info` shows.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::front::conn::Connections;
use crate::front::limits::BodyBudget;
use crate::front::Front;
use crate::input::InputSet;
use crate::intake::Intake;
use crate::metrics::Metrics;
use crate::output_set::{Changes, OutputSet};

/// What a running gateway can change, and the configuration it runs.
pub struct Live {
    pub config: Config,
    pub outputs: OutputSet,
    pub inputs: Option<InputSet>,
    pub intake: Intake,
    pub front: Arc<ArcSwap<Front>>,
    pub connections: Arc<Connections>,
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown; inputs started by a reload stop with it.
    pub stop: CancellationToken,
    /// The process's file descriptor limit (after raising it).
    pub fd_limit: u64,
    /// The web console, when `ui.enabled` was true at start.
    pub console: Option<Arc<crate::console::Console>>,
}

impl Live {
    /// Puts the configuration's limits and hash in force and says what is being served.
    pub fn started(self, local_addr: SocketAddr) -> Live {
        self.apply_connection_limit();
        self.metrics.set_config(&self.config.hash);
        self.announce(local_addr);
        self
    }

    /// Logs what the listener offers, and warns when it is open to anyone.
    fn announce(&self, local_addr: SocketAddr) {
        let c = &self.config;
        let tls = match &c.tls {
            None => "none",
            Some(t) if t.is_mutual() => "mutual",
            Some(_) => "server",
        };
        tracing::info!(
            %local_addr,
            tls,
            auth = c.bearer_token.is_some(),
            outputs = c.outputs.len(),
            spool = %c.spool.dir.display(),
            config = %c.hash,
            "gateway listening"
        );
        if c.tls.is_none() && c.bearer_token.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(
                %local_addr,
                "neither TLS nor a bearer token is configured on a non-loopback address: anyone who can reach this port can post alerts that reach every output (and read /metrics); set tls (with client_ca_file for mutual TLS) or auth.bearer_token"
            );
        }
    }

    /// `max_connections`, kept below the file descriptor limit with room for the spool, the
    /// outputs' own connections and the inputs.
    fn apply_connection_limit(&self) {
        let configured = self.config.limits.max_connections as u64;
        let outbound: u64 = self
            .config
            .outputs
            .iter()
            .map(|o| 2 * o.max_in_flight as u64)
            .sum();
        let reserve = FD_RESERVE.min(self.fd_limit / 4) + outbound;
        let room = self.fd_limit.saturating_sub(reserve).max(1);
        let effective = configured.min(room);
        if effective < configured {
            tracing::warn!(
                max_connections = configured,
                fd_limit = self.fd_limit,
                effective,
                "limits.max_connections is above what the file descriptor limit allows; raise the hard limit (ulimit -Hn, LimitNOFILE=) to allow more"
            );
        }
        self.connections.set_max(effective as usize);
        self.metrics.connections_max.set(effective as i64);
    }

    /// Applies `new`, which has been validated. On an error the running configuration stays.
    async fn apply(&mut self, new: Config) -> Result<Changes, String> {
        let old = &self.config;
        let mut fixed = Vec::new();
        if new.listen != old.listen {
            fixed.push("listen");
        }
        if new.spool.dir != old.spool.dir
            || new.spool.max_bytes != old.spool.max_bytes
            || new.spool.segment_bytes != old.spool.segment_bytes
        {
            fixed.push("spool");
        }
        // Users can change while it runs; turning the console on or off, or moving or resizing
        // its index, takes a restart.
        let console_shape = |c: &Config| c.ui.as_ref().map(|u| (u.index_path.clone(), u.retention));
        if console_shape(&new) != console_shape(old) {
            fixed.push("ui.enabled, ui.index_path and ui.retention");
        }
        if !fixed.is_empty() {
            return Err(format!(
                "{} can only change with a restart; nothing was applied",
                fixed.join(" and ")
            ));
        }
        let changes = self
            .outputs
            .apply(&new.outputs, new.shutdown_grace, new.dead_letter)
            .await
            .map_err(|e| e.to_string())?;
        self.front
            .store(Arc::new(front(&new, Some(&self.front.load()))));
        self.intake
            .custom_fields
            .store(Arc::new(new.custom_fields.clone()));
        if new.inputs_fingerprint != old.inputs_fingerprint
            || new.max_body_bytes != old.max_body_bytes
        {
            if let Some(inputs) = self.inputs.take() {
                inputs.stop().await;
            }
            self.inputs = Some(InputSet::start(
                &new.inputs,
                &self.intake,
                new.max_body_bytes,
                &self.stop,
            ));
        }
        if let (Some(console), Some(ui)) = (&self.console, &new.ui) {
            console
                .auth
                .replace_users(ui.users.clone(), ui.proxy_auth.clone());
            console
                .auth
                .replace_certificates(ui.client_certificates.clone());
        }
        self.config = new;
        self.apply_connection_limit();
        self.metrics.set_config(&self.config.hash);
        Ok(changes)
    }
}

/// File descriptors kept free for the spool, cursors, dead letters, Kafka and the like (a
/// quarter of the limit when that is smaller, so a small limit still leaves room to serve).
const FD_RESERVE: u64 = 256;

/// The front door's settings for `config`. The body budget is kept when its size is unchanged,
/// so reservations of requests in flight stay counted.
pub fn front(config: &Config, previous: Option<&Front>) -> Front {
    let total = config.limits.inflight_body_bytes;
    let budget = match previous {
        Some(p) if p.budget.total() == total => p.budget.clone(),
        _ => BodyBudget::new(total),
    };
    Front {
        limits: config.limits,
        tls: config.tls.clone(),
        bearer_token: config.bearer_token.clone(),
        max_body_bytes: config.max_body_bytes,
        budget,
    }
}

/// Raises the soft limit on open files to the hard limit, as Go's runtime does for
/// Falcosidekick: the default soft limit (1024) is far below what a busy listener needs.
/// Returns the soft limit in force afterwards.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!(
                    from = limit.rlim_cur,
                    to = limit.rlim_max,
                    "raised the open file limit"
                );
                return limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// Reloads and applies configurations to a running gateway; cheap to clone.
#[derive(Clone)]
pub struct Reloader {
    live: Arc<tokio::sync::Mutex<Live>>,
}

impl Reloader {
    pub fn new(live: Live) -> Self {
        Reloader {
            live: Arc::new(tokio::sync::Mutex::new(live)),
        }
    }

    /// Reads `path`, validates it and applies it; counts the result. On any problem the running
    /// configuration is kept and the problems are logged with their key paths.
    pub async fn reload(&self, path: &Path) -> bool {
        let mut live = self.live.lock().await;
        let result = match Config::load(path) {
            Err(errors) => Err(errors
                .0
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")),
            Ok(config) if config.hash == live.config.hash => {
                // The certificate files may have been rotated under the same names.
                let refreshed = front(&config, Some(&live.front.load()));
                live.front.store(Arc::new(refreshed));
                tracing::info!(config = %config.hash, tls = config.tls.is_some(), "configuration unchanged; TLS files re-read");
                Ok(None)
            }
            Ok(config) => live.apply(config).await.map(Some),
        };
        let ok = result.is_ok();
        match result {
            Ok(Some(changes)) => tracing::info!(
                config = %live.config.hash,
                added = ?changes.added,
                changed = ?changes.changed,
                removed = ?changes.removed,
                "configuration reloaded"
            ),
            Ok(None) => {}
            Err(problems) => tracing::error!(
                path = %path.display(),
                %problems,
                config = %live.config.hash,
                "configuration not reloaded; the running one is kept"
            ),
        }
        live.metrics
            .config_reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
        ok
    }

    pub async fn shutdown_grace(&self) -> Duration {
        self.live.lock().await.config.shutdown_grace
    }

    /// At shutdown: inputs store their last batch and commit, outputs finish or save their
    /// cursors.
    pub async fn stop_all(&self) {
        let mut live = self.live.lock().await;
        if let Some(inputs) = live.inputs.take() {
            inputs.stop().await;
        }
        live.outputs.stop_all().await;
    }
}
